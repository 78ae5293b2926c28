#include "connectors/mqtt/mqtt_wire.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

namespace gw::connectors::mqtt {
namespace {

using Clock = std::chrono::steady_clock;

void PutU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xFF));
}
void PutU32(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>((v >> s) & 0xFF));
}
void PutStr(std::string* out, const std::string& s) {
  PutU16(out, static_cast<uint16_t>(s.size()));
  out->append(s);
}
void PutVarint(std::string* out, size_t v) {
  do {
    uint8_t b = v % 128;
    v /= 128;
    if (v > 0) b |= 0x80;
    out->push_back(static_cast<char>(b));
  } while (v > 0);
}
std::string Packet(uint8_t type, const std::string& body) {
  std::string p(1, static_cast<char>(type));
  PutVarint(&p, body.size());
  p += body;
  return p;
}
// Reads a variable byte integer from `s` at `*pos`; false when malformed.
bool GetVarint(const std::string& s, size_t* pos, size_t* v) {
  *v = 0;
  for (int i = 0, shift = 0; i < 4; ++i, shift += 7) {
    if (*pos >= s.size()) return false;
    uint8_t b = static_cast<uint8_t>(s[(*pos)++]);
    *v |= static_cast<size_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}
bool GetU16(const std::string& s, size_t* pos, uint16_t* v) {
  if (*pos + 2 > s.size()) return false;
  *v = static_cast<uint16_t>((static_cast<uint8_t>(s[*pos]) << 8) | static_cast<uint8_t>(s[*pos + 1]));
  *pos += 2;
  return true;
}

std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

const char* ConnackReason(int version, int code) {
  if (version == 4) {
    switch (code) {
      case 1: return "unacceptable protocol version";
      case 2: return "client id rejected";
      case 3: return "server unavailable";
      case 4: return "bad user name or password";
      case 5: return "not authorised";
    }
    return "refused";
  }
  switch (code) {
    case 0x84: return "unsupported protocol version";
    case 0x85: return "client id not valid";
    case 0x86: return "bad user name or password";
    case 0x87: return "not authorised";
    case 0x88: return "server unavailable";
    case 0x89: return "server busy";
    case 0x8A: return "banned";
  }
  return "refused";
}

// The acknowledgement of a received message: PUBACK for QoS 1, PUBREC for QoS 2, none for 0.
void AppendAck(const InboundMessage& m, std::string* out) {
  if (m.qos == 0) return;
  out->push_back(static_cast<char>(m.qos == 1 ? 0x40 : 0x50));
  out->push_back(0x02);
  PutU16(out, m.packet_id);
}

}  // namespace

void SocketInterrupter::Set(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  fd_ = fd;
}

void SocketInterrupter::Interrupt() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

Status ParseBrokerUri(const std::string& uri, std::string* host, int* port, bool* tls) {
  size_t sep = uri.find("://");
  if (sep == std::string::npos) return InvalidArgument("expected SCHEME://HOST:PORT (got \"" + uri + "\")");
  std::string scheme = uri.substr(0, sep);
  if (scheme == "tcp" || scheme == "mqtt") *tls = false;
  else if (scheme == "ssl" || scheme == "mqtts" || scheme == "tls") *tls = true;
  else return InvalidArgument("unsupported scheme \"" + scheme + "\" (tcp, mqtt, ssl, mqtts)");
  std::string rest = uri.substr(sep + 3);
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos) {
    *host = rest;
    *port = *tls ? 8883 : 1883;
  } else {
    *host = rest.substr(0, colon);
    char* end = nullptr;
    long p = std::strtol(rest.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535) return InvalidArgument("bad port in \"" + uri + "\"");
    *port = static_cast<int>(p);
  }
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (host->empty()) return InvalidArgument("no host in \"" + uri + "\"");
  return Status::Ok();
}

WireClient::WireClient(WireOptions options) : options_(std::move(options)) {}

WireClient::~WireClient() { Close(); }

std::string WireClient::Where() const {
  return (options_.tls ? "ssl://" : "tcp://") + options_.host + ":" + std::to_string(options_.port);
}

Status WireClient::Fail(const std::string& what) {
  Status s = Unavailable(Where() + ": " + what);
  if (options_.interrupter) options_.interrupter->Set(-1);
  if (ssl_) { SSL_free(ssl_); ssl_ = nullptr; }
  if (ctx_) { SSL_CTX_free(ctx_); ctx_ = nullptr; }
  if (fd_ >= 0) { ::close(fd_); fd_ = -1; }
  low_water_ = 1;
  return s;
}

void WireClient::Close() {
  early_.clear();
  rbuf_.clear();
  rpos_ = 0;
  if (fd_ >= 0) {
    std::string d = options_.version == 5 ? std::string("\xE0\x01\x00", 3) : std::string("\xE0\x00", 2);
    (void)SendAll(d);
  }
  if (options_.interrupter) options_.interrupter->Set(-1);
  if (ssl_) { SSL_shutdown(ssl_); SSL_free(ssl_); ssl_ = nullptr; }
  if (ctx_) { SSL_CTX_free(ctx_); ctx_ = nullptr; }
  if (fd_ >= 0) { ::close(fd_); fd_ = -1; }
  low_water_ = 1;
}

Status WireClient::StartTls() {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ctx_) return Fail("cannot create a TLS context: " + SslErrors());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  if (!options_.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, options_.ca_file.c_str(), nullptr) != 1) {
      return Fail("cannot load CA file " + options_.ca_file + ": " + SslErrors());
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx_) != 1) {
    return Fail("cannot load the system trust store: " + SslErrors());
  }
  if (!options_.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, options_.cert_file.c_str()) != 1) {
      return Fail("cannot load client certificate " + options_.cert_file + ": " + SslErrors());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx_, options_.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx_) != 1) {
      return Fail("cannot load client key " + options_.key_file + ": " + SslErrors());
    }
  }
  ssl_ = SSL_new(ctx_);
  if (!ssl_) return Fail("cannot create a TLS session: " + SslErrors());
  in6_addr a6;
  in_addr a4;
  bool is_ip = inet_pton(AF_INET, options_.host.c_str(), &a4) == 1 || inet_pton(AF_INET6, options_.host.c_str(), &a6) == 1;
  if (!is_ip) SSL_set_tlsext_host_name(ssl_, options_.host.c_str());
  if (options_.verify_hostname) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, options_.host.c_str()) : SSL_set1_host(ssl_, options_.host.c_str());
    if (ok != 1) return Fail("cannot set the expected host name: " + SslErrors());
  }
  SSL_set_fd(ssl_, fd_);
  if (SSL_connect(ssl_) != 1) {
    long vr = SSL_get_verify_result(ssl_);
    std::string why = vr != X509_V_OK ? std::string("certificate verify failed (") + X509_verify_cert_error_string(vr) + ")"
                                      : SslErrors();
    return Fail("TLS handshake failed: " + why);
  }
  return Status::Ok();
}

Status WireClient::Connect() {
  Close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int gai = getaddrinfo(options_.host.c_str(), std::to_string(options_.port).c_str(), &hints, &res);
  if (gai != 0) return Unavailable(Where() + ": cannot resolve host: " + gai_strerror(gai));
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    // Connect with a timeout, then back to blocking with send/receive timeouts.
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(options_.connect_timeout.count() * 1000));
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) rc = 0;
      else { last_error = rc == 0 ? "connect timed out" : std::strerror(err ? err : errno); rc = -1; }
    } else if (rc != 0) {
      last_error = std::strerror(errno);
    }
    if (rc == 0) {
      fcntl(fd, F_SETFL, flags);
      timeval tv{static_cast<time_t>(options_.connect_timeout.count()), 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
      low_water_ = 1;
      break;
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  if (fd_ < 0) return Unavailable(Where() + ": cannot connect: " + last_error);
  // From here on another thread may interrupt the handshake, the CONNACK wait and all after.
  if (options_.interrupter) options_.interrupter->Set(fd_);
  if (options_.tls) GW_RETURN_IF_ERROR(StartTls());

  std::string body;
  PutStr(&body, "MQTT");
  body.push_back(static_cast<char>(options_.version));
  uint8_t flags = 0;
  if (!options_.username.empty()) flags |= 0x80;
  if (!options_.password.empty()) flags |= 0x40;
  if (options_.clean_session) flags |= 0x02;
  body.push_back(static_cast<char>(flags));
  PutU16(&body, static_cast<uint16_t>(options_.keepalive.count()));
  if (options_.version == 5) {
    std::string props;
    props.push_back(0x11);
    PutU32(&props, options_.clean_session ? 0 : options_.session_expiry_s);
    props.push_back(0x21);
    PutU16(&props, options_.receive_maximum);
    PutVarint(&body, props.size());
    body += props;
  }
  PutStr(&body, options_.client_id);
  if (!options_.username.empty()) PutStr(&body, options_.username);
  if (!options_.password.empty()) PutStr(&body, options_.password);
  GW_RETURN_IF_ERROR(SendAll(Packet(0x10, body)));
  uint8_t type = 0;
  std::string ack;
  Status s = ReadPacket(&type, &ack, Clock::now() + options_.connect_timeout);
  if (!s.ok()) return Unavailable(s.message() + " (while waiting for CONNACK)");
  if ((type >> 4) != 2 || ack.size() < 2) return Fail("expected CONNACK");
  int code = static_cast<uint8_t>(ack[1]);
  if (code != 0) {
    std::string why = ConnackReason(options_.version, code);
    Status st = Fail("connection refused: " + why);
    if (why.find("user name") != std::string::npos || why.find("authorised") != std::string::npos || why == "banned") {
      return PermissionDenied(st.message());
    }
    return st;
  }
  session_present_ = (ack[0] & 1) != 0;
  // MQTT 5: the broker says how many unacknowledged QoS 1/2 messages it takes (Receive
  // Maximum) and how large a packet may be (Maximum Packet Size).
  broker_receive_maximum_ = 65535;
  broker_max_packet_ = 0;
  if (options_.version == 5) {
    size_t pos = 2, plen = 0;
    if (GetVarint(ack, &pos, &plen) && pos + plen <= ack.size()) {
      const size_t end = pos + plen;
      while (pos < end) {
        uint8_t id = static_cast<uint8_t>(ack[pos++]);
        if (id == 0x21 && pos + 2 <= end) {
          broker_receive_maximum_ = static_cast<uint16_t>((static_cast<uint8_t>(ack[pos]) << 8) | static_cast<uint8_t>(ack[pos + 1]));
          pos += 2;
        } else if (id == 0x27 && pos + 4 <= end) {
          uint32_t v = 0;
          for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(ack[pos + i]);
          broker_max_packet_ = v;
          pos += 4;
        } else if (id == 0x13 || id == 0x21 || id == 0x22) {
          pos += 2;  // two-byte integers
        } else if (id == 0x11 || id == 0x27) {
          pos += 4;  // four-byte integers
        } else if (id == 0x24 || id == 0x25 || id == 0x28 || id == 0x29 || id == 0x2A) {
          pos += 1;  // bytes
        } else if (id == 0x12 || id == 0x15 || id == 0x16 || id == 0x1A || id == 0x1C || id == 0x1F) {
          uint16_t len = 0;  // strings and binary data
          if (!GetU16(ack, &pos, &len)) break;
          pos += len;
        } else if (id == 0x26) {  // user property: two strings
          uint16_t len = 0;
          if (!GetU16(ack, &pos, &len)) break;
          pos += len;
          if (!GetU16(ack, &pos, &len)) break;
          pos += len;
        } else {
          break;  // unknown: stop reading properties, keep the defaults
        }
      }
    }
  }
  return Status::Ok();
}

Status WireClient::Subscribe(const std::vector<std::string>& filters, int qos) {
  std::string body;
  uint16_t id = next_id_++;
  if (next_id_ == 0) next_id_ = 1;
  PutU16(&body, id);
  if (options_.version == 5) body.push_back(0);
  for (const std::string& f : filters) {
    PutStr(&body, f);
    body.push_back(static_cast<char>(qos));
  }
  GW_RETURN_IF_ERROR(SendAll(Packet(0x82, body)));
  auto deadline = Clock::now() + options_.connect_timeout;
  for (;;) {
    uint8_t type = 0;
    std::string ack;
    Status s = ReadPacket(&type, &ack, deadline);
    if (!s.ok()) return Unavailable(s.message() + " (while waiting for SUBACK)");
    if ((type >> 4) == 3) {
      // A resumed session delivers its queued messages straight after the CONNACK.
      InboundMessage m;
      GW_RETURN_IF_ERROR(ParsePublish(type, ack, &m));
      early_.push_back(std::move(m));
      continue;
    }
    if ((type >> 4) != 9) continue;
    size_t pos = 0;
    uint16_t got = 0;
    if (!GetU16(ack, &pos, &got) || got != id) return Fail("malformed SUBACK");
    if (options_.version == 5) {
      size_t plen = 0;
      if (!GetVarint(ack, &pos, &plen)) return Fail("malformed SUBACK");
      pos += plen;
    }
    for (size_t i = 0; i < filters.size(); ++i) {
      if (pos + i >= ack.size()) return Fail("malformed SUBACK");
      uint8_t granted = static_cast<uint8_t>(ack[pos + i]);
      if (granted >= 0x80) {
        return PermissionDenied(Where() + ": subscription to \"" + filters[i] + "\" refused by the broker");
      }
      if (granted < qos) {
        // QoS 0 would deliver without acknowledgement: a crash could lose messages.
        return FailedPrecondition(Where() + ": the broker granted QoS " + std::to_string(granted) + " for \"" + filters[i] +
                                  "\", below the " + std::to_string(qos) + " asked for");
      }
    }
    return Status::Ok();
  }
}

std::string WireClient::TlsWriteError(int rc) {
  const int kind = SSL_get_error(ssl_, rc);
  const int saved_errno = errno;
  std::string why = SslErrors();
  if (why != "unknown TLS error") return why;
  // With TLS 1.3 the client's side of the handshake ends before the broker has checked our
  // certificate; a broker that refuses it sends an alert and closes, and the first write
  // fails without a reason. The alert, when it is there to read, says why.
  char scratch[256];
  ERR_clear_error();
  if (SSL_read(ssl_, scratch, sizeof scratch) <= 0) {
    std::string alert = SslErrors();
    if (alert != "unknown TLS error") return alert;
  }
  if (kind == SSL_ERROR_ZERO_RETURN || (kind == SSL_ERROR_SYSCALL && saved_errno != 0)) {
    return std::string("connection closed by the broker") + (saved_errno ? std::string(" (") + std::strerror(saved_errno) + ")" : "");
  }
  return why;
}

Status WireClient::SendAll(const std::string& bytes) {
  if (fd_ < 0) return Unavailable(Where() + ": not connected");
  size_t off = 0;
  while (off < bytes.size()) {
    int n;
    if (ssl_) {
      ERR_clear_error();
      n = SSL_write(ssl_, bytes.data() + off, static_cast<int>(bytes.size() - off));
      if (n <= 0) return Fail("write failed: " + TlsWriteError(n));
    } else {
      n = static_cast<int>(::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Fail(std::string("write failed: ") + std::strerror(errno));
      }
    }
    off += static_cast<size_t>(n);
  }
  last_sent_ = Clock::now();
  return Status::Ok();
}

// How long a wait for many acknowledgements goes on before it takes the ones already here.
constexpr int64_t kAckPatienceMs = 1;

void WireClient::SetReceiveLowWater(size_t bytes) {
  bytes = std::min<size_t>(bytes, 1u << 16);
  if (fd_ < 0 || bytes == low_water_) return;
  int v = static_cast<int>(bytes);
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof v) == 0) low_water_ = bytes;
}

Status WireClient::ReadExact(char* buf, size_t n, Clock::time_point deadline, bool allow_timeout_at_start) {
  size_t got = 0;
  // Bytes already read from the socket come first: one recv() usually brings many packets.
  auto take = [&] {
    size_t k = std::min(n - got, rbuf_.size() - rpos_);
    if (k) std::memcpy(buf + got, rbuf_.data() + rpos_, k);
    got += k;
    rpos_ += k;
    if (rpos_ == rbuf_.size()) {
      rbuf_.clear();
      rpos_ = 0;
    }
  };
  take();
  char chunk[16384];
  while (got < n) {
    if (!(ssl_ && SSL_pending(ssl_) > 0)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left < 0) left = 0;
      if (left > 0) {
        // About to wait for the broker: acknowledge its bytes at once. Otherwise the kernel
        // delays our TCP ACK (we are sending nothing to carry it), and a broker with Nagle's
        // algorithm on (Mosquitto's default) holds its next small packet, a PUBACK, until that
        // ACK comes: a stall of up to 40 ms at the end of every batch. Linux clears the flag
        // again by itself, so it is set before each wait.
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
      }
      pollfd p{fd_, POLLIN, 0};
      // A raised mark is waited for kAckPatience at most. A broker with Nagle's algorithm on
      // (Mosquitto's default) sends one small packet and holds the next ones until our TCP
      // ACK, which the kernel delays while nothing is read: without the limit each wait for
      // many acknowledgements would stall for the delayed-ACK timer (40 ms).
      const bool patient = low_water_ > 1 && left > kAckPatienceMs;
      int rc = ::poll(&p, 1, static_cast<int>(patient ? kAckPatienceMs : left));
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0 && low_water_ > 1) SetReceiveLowWater(1);  // the recv() below must not wait for the mark
      if (rc == 0 && patient) {
        SetReceiveLowWater(1);
        continue;
      }
      if (rc == 0) {
        if (got == 0 && allow_timeout_at_start) return DeadlineExceeded("no data");
        if (Clock::now() >= deadline) return Fail("timed out in the middle of a packet");
        continue;
      }
    }
    int r;
    if (ssl_) {
      ERR_clear_error();
      r = SSL_read(ssl_, chunk, sizeof chunk);
      if (r <= 0) {
        int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ) continue;
        return Fail(e == SSL_ERROR_ZERO_RETURN ? "connection closed by the broker" : "read failed: " + SslErrors());
      }
    } else {
      r = static_cast<int>(::recv(fd_, chunk, sizeof chunk, 0));
      if (r == 0) return Fail("connection closed by the broker");
      if (r < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return Fail(std::string("read failed: ") + std::strerror(errno));
      }
    }
    rbuf_.append(chunk, static_cast<size_t>(r));
    take();
    // The rest of a packet may be fewer bytes than a raised mark: wake for any byte again.
    if (low_water_ > 1) SetReceiveLowWater(1);
  }
  last_received_ = Clock::now();
  return Status::Ok();
}

Status WireClient::ReadPacket(uint8_t* type, std::string* body, Clock::time_point deadline) {
  if (fd_ < 0) return Unavailable(Where() + ": not connected");
  char b = 0;
  GW_RETURN_IF_ERROR(ReadExact(&b, 1, deadline, true));
  *type = static_cast<uint8_t>(b);
  // A packet that has begun is read to its end even past `deadline`, within a grace period.
  auto rest = std::max(deadline, Clock::now() + options_.connect_timeout);
  size_t len = 0;
  for (int i = 0, shift = 0;; ++i, shift += 7) {
    if (i == 4) return Fail("malformed remaining length");
    GW_RETURN_IF_ERROR(ReadExact(&b, 1, rest, false));
    len |= static_cast<size_t>(static_cast<uint8_t>(b) & 0x7F) << shift;
    if (!(static_cast<uint8_t>(b) & 0x80)) break;
  }
  if (len > (256u << 20)) return Fail("packet larger than 256 MB");
  body->resize(len);
  if (len) GW_RETURN_IF_ERROR(ReadExact(body->data(), len, rest, false));
  return Status::Ok();
}

Status WireClient::ParsePublish(uint8_t type, const std::string& body, InboundMessage* out) {
  size_t pos = 0;
  uint16_t tlen = 0;
  if (!GetU16(body, &pos, &tlen) || pos + tlen > body.size()) return Fail("malformed PUBLISH");
  out->topic = body.substr(pos, tlen);
  pos += tlen;
  out->qos = (type >> 1) & 3;
  out->dup = (type & 0x08) != 0;
  out->packet_id = 0;
  if (out->qos > 0 && !GetU16(body, &pos, &out->packet_id)) return Fail("malformed PUBLISH");
  if (options_.version == 5) {
    size_t plen = 0;
    if (!GetVarint(body, &pos, &plen) || pos + plen > body.size()) return Fail("malformed PUBLISH properties");
    pos += plen;
  }
  out->payload = body.substr(pos);
  return Status::Ok();
}

StatusOr<bool> WireClient::Receive(InboundMessage* out, std::chrono::milliseconds wait) {
  if (!early_.empty()) {
    *out = std::move(early_.front());
    early_.pop_front();
    return true;
  }
  auto deadline = Clock::now() + wait;
  for (;;) {
    auto now = Clock::now();
    if (now - last_sent_ >= options_.keepalive / 2) GW_RETURN_IF_ERROR(SendAll(std::string("\xC0\x00", 2)));
    if (now - last_received_ > options_.keepalive * 3 / 2 + std::chrono::seconds(1)) {
      return Fail("no packet from the broker for " + std::to_string((options_.keepalive * 3 / 2).count()) + " s");
    }
    auto until = std::min(deadline, last_sent_ + options_.keepalive / 2);
    uint8_t type = 0;
    std::string body;
    Status s = ReadPacket(&type, &body, until);
    if (s.code() == StatusCode::kDeadlineExceeded) {
      if (Clock::now() >= deadline) return false;
      continue;
    }
    if (!s.ok()) return s;
    switch (type >> 4) {
      case 3:  // PUBLISH
        GW_RETURN_IF_ERROR(ParsePublish(type, body, out));
        return true;
      case 6: {  // PUBREL (QoS 2): complete it
        std::string comp("\x70\x02", 2);
        comp += body.substr(0, 2);
        GW_RETURN_IF_ERROR(SendAll(comp));
        break;
      }
      case 13:  // PINGRESP
        break;
      case 14:  // DISCONNECT from the broker (MQTT 5)
        return Fail("disconnected by the broker");
      default:
        break;  // SUBACK, PUBACK and the like: nothing to do here
    }
  }
}

Status WireClient::Ack(const InboundMessage& m) {
  std::string p;
  AppendAck(m, &p);
  return p.empty() ? Status::Ok() : SendAll(p);
}

Status WireClient::Ack(const std::vector<InboundMessage>& messages) {
  std::string p;
  p.reserve(4 * messages.size());
  for (const InboundMessage& m : messages) AppendAck(m, &p);
  return p.empty() ? Status::Ok() : SendAll(p);
}

void WireClient::PublishBatch(const std::vector<OutboundMessage>& messages, int qos, size_t window,
                              std::chrono::seconds timeout, std::vector<Status>* results) {
  PublishBatch(messages.size(), [&messages](size_t i, Status*) { return &messages[i]; }, qos, window, timeout, results);
}

void WireClient::PublishBatch(size_t n, const MessageAt& message_at, int qos, size_t window,
                              std::chrono::seconds timeout, std::vector<Status>* results) {
  if (fd_ < 0) {
    results->assign(n, Unavailable(Where() + ": not connected"));
    return;
  }
  // Every message sent gets its verdict from its acknowledgement or from what ended the batch;
  // those never sent (behind a failure) are told so on the way out. Filling every slot with
  // that message up front cost an allocation per message.
  results->assign(n, Status::Ok());
  size_t next = 0;
  struct NotSent {
    std::vector<Status>* results;
    const size_t& next;
    ~NotSent() {
      if (next == results->size()) return;
      const Status why = Unavailable("not sent: an earlier message of the batch failed");
      for (size_t i = next; i < results->size(); ++i) (*results)[i] = why;
    }
  } not_sent{results, next};
  // The broker's own limit on unconfirmed messages (MQTT 5) caps the window.
  window = std::max<size_t>(1, std::min<size_t>(window, broker_receive_maximum_));
  std::unordered_map<uint16_t, size_t> pending;  // packet id -> message index
  pending.reserve(window);
  std::unordered_set<uint16_t> released;           // QoS 2: PUBREC came, PUBCOMP awaited
  bool failed = false;
  std::string out;
  auto lose_pending = [&](const Status& why) {
    for (const auto& [id, i] : pending) (*results)[i] = why;
    pending.clear();
  };
  auto deadline = Clock::now() + timeout;
  // A packet read in the current round of acknowledgements, handled below the loop head.
  bool have_packet = false;
  uint8_t type = 0;
  std::string body;
  for (;;) {
    if (!have_packet) {
      // Fill the window; many PUBLISH packets go out in one write.
      out.clear();
      while (!failed && next < n && pending.size() < window && out.size() < (256u << 10)) {
        Status refused;
        const OutboundMessage* made = message_at(next, &refused);
        if (!made) {
          (*results)[next++] = refused;
          continue;
        }
        const OutboundMessage& m = *made;
        const size_t body_len = 2 + m.topic.size() + 2 + (options_.version == 5 ? 1 : 0) + m.payload.size();
        if (m.topic.size() > 65535 || body_len > kMaxRemainingLength ||
            (broker_max_packet_ > 0 && body_len + 5 > broker_max_packet_)) {
          // Cannot be sent at all: refused for good, and it holds nothing else back.
          (*results)[next++] = InvalidArgument("message of " + std::to_string(body_len) + " bytes (topic " +
                                               std::to_string(m.topic.size()) + ") is larger than MQTT or this broker allows");
          continue;
        }
        // Ids wrap at 65535: one still awaiting its acknowledgement is not given out again (the
        // window is below 65535, so a free one is always found).
        uint16_t id = 0;
        do {
          id = next_id_++;
          if (next_id_ == 0) next_id_ = 1;
        } while (pending.count(id) > 0);
        out.push_back(static_cast<char>(qos == 2 ? 0x34 : 0x32));
        PutVarint(&out, body_len);
        PutStr(&out, m.topic);
        PutU16(&out, id);
        if (options_.version == 5) out.push_back(0);  // no properties
        out.append(m.payload);
        pending[id] = next++;
      }
      if (!out.empty()) {
        Status s = SendAll(out);
        if (!s.ok()) {
          lose_pending(s);
          return;
        }
      }
      if (pending.empty()) {
        if (failed || next >= n) return;
        continue;
      }
      // Wait for an acknowledgement only when nothing more may be sent; otherwise take what
      // is already here and go on writing. Waiting after every write would leave the window
      // mostly empty and the connection idle for a round trip each time.
      const bool can_send = !failed && next < n && pending.size() < window;
      // With the window full, sleep until half of it has been confirmed rather than waking
      // for each PUBACK: the kernel holds the wake-up until that many bytes are readable
      // (SO_RCVLOWAT), and the refill then writes many messages at once. Every message in
      // flight owes at least one 4-byte acknowledgement (PUBACK, or PUBREC then PUBCOMP), and
      // TLS only adds bytes, so the mark never asks for more than will come. ReadExact lowers
      // it again after its first read, or when kAckPatience passes without one.
      if (!can_send && rpos_ == rbuf_.size()) {
        SetReceiveLowWater(4 * std::min(pending.size(), std::max<size_t>(1, window / 2)));
      }
      Status s = ReadPacket(&type, &body, can_send ? Clock::now() : deadline);
      if (s.code() == StatusCode::kDeadlineExceeded) {
        if (can_send) continue;
        Status why = Unavailable(Where() + ": no acknowledgement within " + std::to_string(timeout.count()) + " s");
        Close();
        lose_pending(why);
        return;
      }
      if (!s.ok()) {
        lose_pending(s);
        return;
      }
    }
    have_packet = false;
    if (!HandleAck(type, body, qos, &pending, &released, results, &failed, &deadline, timeout)) return;
    // More acknowledgements already here are taken before the next refill, so that a burst
    // of them becomes one write.
    Status more = ReadPacket(&type, &body, Clock::now());
    if (more.ok()) {
      have_packet = true;
    } else if (more.code() != StatusCode::kDeadlineExceeded) {
      lose_pending(more);
      return;
    }
  }
}

bool WireClient::HandleAck(uint8_t type, const std::string& body, int qos,
                           std::unordered_map<uint16_t, size_t>* pending, std::unordered_set<uint16_t>* released,
                           std::vector<Status>* results, bool* failed, Clock::time_point* deadline,
                           std::chrono::seconds timeout) {
  auto lose_pending = [&](const Status& why) {
    for (const auto& [id, i] : *pending) (*results)[i] = why;
    pending->clear();
  };
  const int kind = type >> 4;
  if (kind == 14) {
    lose_pending(Fail("disconnected by the broker"));
    return false;
  }
  if (kind != 4 && kind != 5 && kind != 7) return true;  // PINGRESP and the like
  size_t pos = 0;
  uint16_t id = 0;
  if (!GetU16(body, &pos, &id)) {
    lose_pending(Fail("malformed acknowledgement"));
    return false;
  }
  auto it = pending->find(id);
  if (it == pending->end()) return true;  // from an earlier, abandoned batch
  const size_t index = it->second;
  // QoS 1 is settled by a PUBACK; QoS 2 by a PUBREC (answered with a PUBREL), then a PUBCOMP.
  // Anything else means the broker and this client disagree about the message: taking it as
  // a confirmation could lose it, so the connection ends and the batch is offered again.
  const bool fits = qos == 2 ? (kind == 5 || (kind == 7 && released->count(id) > 0)) : kind == 4;
  if (!fits) {
    static const char* kNames[] = {"", "", "", "", "PUBACK", "PUBREC", "", "PUBCOMP"};
    Status why = Fail(std::string("protocol error: the broker sent ") + kNames[kind] + " for packet " +
                      std::to_string(id) + ", a QoS " + std::to_string(qos) + " message" +
                      (qos == 2 && kind == 7 ? " not yet acknowledged with PUBREC" : ""));
    lose_pending(why);
    return false;
  }
  const int reason = (options_.version == 5 && body.size() >= 3) ? static_cast<uint8_t>(body[2]) : 0;
  if (reason >= 0x80) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", reason);
    // Not authorised, a bad topic, too large, a bad payload format: this message never
    // will be taken, so it becomes a dead letter and the others go on. Anything else
    // (quota, server busy) is transient: stop here and keep order.
    const bool permanent = reason == 0x87 || reason == 0x90 || reason == 0x95 || reason == 0x99;
    std::string what = Where() + ": the broker refused the message (reason " + hex + ")";
    (*results)[index] = permanent ? PermissionDenied(what) : Unavailable(what);
    pending->erase(it);
    released->erase(id);
    if (!permanent) *failed = true;
    return true;
  }
  if (kind == 5) {  // PUBREC: release it (again, if the broker repeated itself), then wait for PUBCOMP
    std::string rel("\x62\x02", 2);
    PutU16(&rel, id);
    Status w = SendAll(rel);
    if (!w.ok()) {
      lose_pending(w);
      return false;
    }
    released->insert(id);
    return true;
  }
  (*results)[index] = Status::Ok();  // PUBACK (QoS 1) or PUBCOMP (QoS 2)
  pending->erase(it);
  released->erase(id);
  *deadline = Clock::now() + timeout;  // the broker is making progress
  return true;
}

Status WireClient::Ping() {
  GW_RETURN_IF_ERROR(SendAll(std::string("\xC0\x00", 2)));
  auto deadline = Clock::now() + options_.connect_timeout;
  for (;;) {
    uint8_t type = 0;
    std::string body;
    Status s = ReadPacket(&type, &body, deadline);
    if (s.code() == StatusCode::kDeadlineExceeded) return Fail("no PINGRESP");
    if (!s.ok()) return s;
    if ((type >> 4) == 13) return Status::Ok();
    if ((type >> 4) == 14) return Fail("disconnected by the broker");
  }
}

Status WireClient::CheckAlive() {
  if (fd_ < 0) return Unavailable(Where() + ": not connected");
  for (;;) {
    uint8_t type = 0;
    std::string body;
    Status s = ReadPacket(&type, &body, Clock::now());
    if (s.code() == StatusCode::kDeadlineExceeded) return Status::Ok();  // nothing waiting: alive
    if (!s.ok()) return s;  // closed by the broker, or broken
    if ((type >> 4) == 14) return Fail("disconnected by the broker");
  }
}

}  // namespace gw::connectors::mqtt
