// Retry back-off with full jitter, shared by the pipeline's sink workers and the connectors'
// reconnect loops. Thread-safety: uses a thread-local generator.
#ifndef GW_BACKOFF_H_
#define GW_BACKOFF_H_

#include <chrono>

namespace gw {

// Full-jitter back-off: uniform in [0, min(max, base * 2^(attempt-1))].
std::chrono::milliseconds JitteredBackoff(int attempt, std::chrono::milliseconds base, std::chrono::milliseconds max);

}  // namespace gw

#endif  // GW_BACKOFF_H_
