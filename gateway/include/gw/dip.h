// The DIP's request signing (reference/FORMATS.md, "Signing"): every request the gateway
// sends to the DIP, and every webhook call the DIP makes to it, carries four headers:
//
//   X-DIP-Content-Hash          base64(SHA-256(body))
//   X-DIP-Signature-Date        ISO-8601 UTC
//   X-DIP-Signature             base64(RSA PKCS#1 v1.5 SHA-256 over
//                               "POST;<full URL, lower-case>;<date>;<content hash>")
//   X-DIP-Signature-Certificate base64 of the signer's PEM certificate
//
// Thread-safety: pure functions over thread-safe signers and trust stores.
#ifndef GW_DIP_H_
#define GW_DIP_H_

#include <string>
#include <utility>
#include <vector>

#include "gw/security.h"
#include "mhhs/status.h"

namespace gw {

struct DipSignatureHeaders {
  std::string content_hash;  // X-DIP-Content-Hash
  std::string date;          // X-DIP-Signature-Date
  std::string signature;     // X-DIP-Signature
  std::string certificate;   // X-DIP-Signature-Certificate
};

// The four headers as (name, value) pairs, in the order above, to set on a request.
std::vector<std::pair<std::string, std::string>> DipHeaderFields(const DipSignatureHeaders& h);

// "POST;https://dip.example/dip-channel/if-021;2026-11-26T16:30:00Z;<hash>": the method as
// given, the URL lower-cased.
std::string DipStringToSign(const std::string& method, const std::string& url, const std::string& date,
                            const std::string& content_hash);

// Signs a request. The DIP takes RSA signatures only: an EC signer is refused
// (kFailedPrecondition, saying so).
StatusOr<DipSignatureHeaders> SignDipRequest(const EventSigner& signer, const std::string& method, const std::string& url,
                                             const std::string& body, const std::string& date);

// Checks a request's headers against its body and URL and the trust store, before anything
// else is done with it. Codes as TrustStore::Verify (signature_missing, content_hash_mismatch,
// signature_invalid, certificate_untrusted, ...), and signature_stale for a date more than
// `max_skew_s` away from now.
VerifyVerdict VerifyDipRequest(const TrustStore& trust, const std::string& method, const std::string& url,
                               const std::string& body, const DipSignatureHeaders& headers, int64_t max_skew_s = 300);

}  // namespace gw

#endif  // GW_DIP_H_
