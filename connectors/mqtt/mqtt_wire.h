// A minimal MQTT 3.1.1 / 5 client: a subscriber with manual acknowledgement for the `mqtt`
// source, and a batched publisher for the `mqtt` sink.
//
// Why not Paho: Paho C (1.3.12, Debian 12) sends the PUBACK for a QoS 1 message before the
// application sees it, so a crash between the PUBACK and the journal commit would lose the
// message. The gateway must acknowledge only after its journal commit; this client hands each
// PUBLISH over with its packet id and sends the PUBACK when told to. For publishing, Paho's
// per-message cost (a token, a copy and a wake-up of its send thread per message) was a third
// of the gateway's CPU; PublishBatch() writes a window's worth of PUBLISH packets per system
// call and reads the acknowledgements from one buffer.
//
// Supports: TCP and TLS 1.2+ (OpenSSL: CA file, client certificate and key, hostname check),
// username/password, persistent sessions (clean session off; MQTT 5 session expiry), QoS 1
// subscriptions (shared subscriptions are plain filters, `$share/GROUP/…`), keep-alive pings.
// Thread-safety: one thread at a time. To interrupt a blocked call from another thread, give
// the client a SocketInterrupter (WireOptions::interrupter); nothing else is thread-safe.
#ifndef GW_CONNECTORS_MQTT_MQTT_WIRE_H_
#define GW_CONNECTORS_MQTT_MQTT_WIRE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "mhhs/status.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace gw::connectors::mqtt {

// Wakes a thread blocked on a client's socket from another thread, by shutting the socket
// down (the blocked call then fails and the client closes). Thread-safe.
class SocketInterrupter {
 public:
  void Set(int fd);
  void Interrupt();

 private:
  std::mutex mu_;  // a socket is never shut down after its number was given back
  int fd_ = -1;
};

struct WireOptions {
  std::string host;
  int port = 1883;
  bool tls = false;
  std::string ca_file;     // empty: the system's trust store
  std::string cert_file;   // client certificate (mTLS), PEM
  std::string key_file;    // its private key, PEM
  bool verify_hostname = true;
  std::string client_id;
  std::string username;
  std::string password;
  int version = 4;         // 4: MQTT 3.1.1, 5: MQTT 5
  bool clean_session = false;
  uint32_t session_expiry_s = 7 * 24 * 3600;  // MQTT 5: how long the broker keeps the session
  uint16_t receive_maximum = 1000;            // MQTT 5: unacknowledged messages we accept
  std::chrono::seconds keepalive{30};
  std::chrono::seconds connect_timeout{10};
  SocketInterrupter* interrupter = nullptr;  // told about the socket while it is open
};

struct OutboundMessage {
  std::string topic;
  std::string payload;
};

struct InboundMessage {
  std::string topic;
  std::string payload;
  uint16_t packet_id = 0;  // 0 for QoS 0
  int qos = 0;
  bool dup = false;
};

// Parses "tcp://host:port", "mqtt://", "ssl://", "mqtts://" into host, port and TLS.
Status ParseBrokerUri(const std::string& uri, std::string* host, int* port, bool* tls);

class WireClient {
 public:
  explicit WireClient(WireOptions options);
  ~WireClient();
  WireClient(const WireClient&) = delete;
  WireClient& operator=(const WireClient&) = delete;

  // Connects (TCP, TLS, CONNECT/CONNACK). Errors: kUnavailable (network, refused, TLS
  // handshake), kPermissionDenied (bad credentials or not authorised), each naming the broker.
  Status Connect();
  // Subscribes and waits for the SUBACK; kPermissionDenied when the broker refuses a filter.
  Status Subscribe(const std::vector<std::string>& filters, int qos);
  // Waits up to `wait` for the next PUBLISH; false when none came. Pings and PUBRELs are
  // handled inside. Errors: kUnavailable (connection lost or protocol error).
  StatusOr<bool> Receive(InboundMessage* out, std::chrono::milliseconds wait);
  // Acknowledges a message: PUBACK for QoS 1, PUBREC for QoS 2 (nothing for QoS 0).
  Status Ack(const InboundMessage& m);
  // Acknowledges each of `messages`, in order, with one write for all of them.
  Status Ack(const std::vector<InboundMessage>& messages);
  // Publishes `messages` in order with QoS `qos` (1 or 2), at most `window` unconfirmed at
  // once. (*results)[i] is OK once the broker confirmed message i (PUBACK; PUBREC, PUBREL,
  // PUBCOMP for QoS 2). After a refusal nothing new is sent (the rest are kUnavailable), so
  // order is kept; a connection error, or `timeout` without any acknowledgement, closes the
  // connection and leaves every unconfirmed message kUnavailable.
  void PublishBatch(const std::vector<OutboundMessage>& messages, int qos, size_t window, std::chrono::seconds timeout,
                    std::vector<Status>* results);
  // Gives message `i` of a batch: a pointer valid until the next call, or null with `*refused`
  // set for a message that is not to be sent (refused for good; it holds nothing back).
  using MessageAt = std::function<const OutboundMessage*(size_t i, Status* refused)>;
  // As above, for `n` messages made one at a time as the window takes them, so that a batch's
  // messages need not all be in memory at once.
  void PublishBatch(size_t n, const MessageAt& message_at, int qos, size_t window, std::chrono::seconds timeout,
                    std::vector<Status>* results);
  // PINGREQ, and waits for the PINGRESP. Errors close the connection.
  Status Ping();
  // Reads whatever the broker sent without waiting: notices a connection the broker closed
  // (kUnavailable, and the connection is closed). OK when nothing is amiss.
  Status CheckAlive();
  bool connected() const { return fd_ >= 0; }
  bool session_present() const { return session_present_; }
  // Sends DISCONNECT when connected and closes the socket.
  void Close();

 private:
  Status Fail(const std::string& what);
  Status SendAll(const std::string& bytes);
  // Why SSL_write() returned `rc`: OpenSSL's reason, else the broker's alert, else the socket's.
  std::string TlsWriteError(int rc);
  // Reads exactly `n` bytes, waiting at most until `deadline`; kDeadlineExceeded when none came.
  Status ReadExact(char* buf, size_t n, std::chrono::steady_clock::time_point deadline, bool allow_timeout_at_start);
  // How many bytes must be readable before a wait on the socket ends (SO_RCVLOWAT); ReadExact
  // puts it back to 1 after its next read.
  void SetReceiveLowWater(size_t bytes);
  // Reads one packet: its first byte and its body.
  Status ReadPacket(uint8_t* type, std::string* body, std::chrono::steady_clock::time_point deadline);
  Status StartTls();
  // Takes one packet read while publishing messages of QoS `qos`: an acknowledgement settles
  // its message in `results`; `released` holds the QoS 2 messages whose PUBREC came (PUBREL
  // sent, PUBCOMP awaited). An acknowledgement that does not fit the message's QoS (a PUBCOMP
  // for QoS 1, a PUBACK for QoS 2, a PUBCOMP before the PUBREC) is a protocol error: the
  // connection is closed. False when the batch must end (connection lost, protocol error).
  bool HandleAck(uint8_t type, const std::string& body, int qos, std::unordered_map<uint16_t, size_t>* pending,
                 std::unordered_set<uint16_t>* released, std::vector<Status>* results, bool* failed,
                 std::chrono::steady_clock::time_point* deadline, std::chrono::seconds timeout);
  // Decodes a PUBLISH packet.
  Status ParsePublish(uint8_t type, const std::string& body, InboundMessage* out);
  std::string Where() const;

  WireOptions options_;
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool session_present_ = false;
  uint16_t next_id_ = 1;
  std::chrono::steady_clock::time_point last_sent_{};
  std::chrono::steady_clock::time_point last_received_{};
  // Messages a resumed session delivered before the SUBACK; Receive() returns them first.
  std::deque<InboundMessage> early_;
  // What the broker announced in its CONNACK (MQTT 5); no limit otherwise.
  uint16_t broker_receive_maximum_ = 65535;
  uint32_t broker_max_packet_ = 0;  // 0: no limit announced
  static constexpr size_t kMaxRemainingLength = 268435455;  // the largest an MQTT packet can say
  // Read from the socket but not yet consumed.
  std::string rbuf_;
  size_t rpos_ = 0;
  size_t low_water_ = 1;
};

}  // namespace gw::connectors::mqtt

#endif  // GW_CONNECTORS_MQTT_MQTT_WIRE_H_
