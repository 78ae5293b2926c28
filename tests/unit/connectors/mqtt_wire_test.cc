// The MQTT client's publishing against a scripted broker: how it takes acknowledgements that
// do not fit the message's QoS, or that come late. A real Mosquitto never sends those (the integration tests use
// one); this broker does, on purpose. It speaks just enough MQTT 3.1.1 for one connection.
#include "connectors/mqtt/mqtt_wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace gw::connectors::mqtt {
namespace {

struct Packet {
  int kind = 0;  // the MQTT packet type: 3 PUBLISH, 6 PUBREL, 14 DISCONNECT, ...
  int qos = 0;   // of a PUBLISH
  uint16_t id = 0;
};

// An acknowledgement packet (PUBACK 0x40, PUBREC 0x50, PUBCOMP 0x70) for `id`.
std::string Ack(uint8_t first_byte, uint16_t id) {
  return std::string{static_cast<char>(first_byte), 0x02, static_cast<char>(id >> 8), static_cast<char>(id & 0xFF)};
}

// A PUBLISH packet on topic "t" (short enough for a one-byte remaining length).
std::string PublishPacket(int qos, uint16_t id, const std::string& payload) {
  std::string body{0x00, 0x01, 't'};
  if (qos > 0) body += std::string{static_cast<char>(id >> 8), static_cast<char>(id & 0xFF)};
  body += payload;
  return std::string{static_cast<char>(0x30 | (qos << 1)), static_cast<char>(body.size())} + body;
}

// Accepts one client on 127.0.0.1, answers its CONNECT with a CONNACK, then sends whatever
// `script` returns for each packet the client sends after that.
class ScriptedBroker {
 public:
  using Script = std::function<std::string(const Packet&)>;

  explicit ScriptedBroker(Script script) : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 1), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedBroker() {
    ::shutdown(listen_fd_, SHUT_RDWR);
    // A client still connected would keep the thread in recv(): end its connection too.
    int fd = conn_fd_.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  // What the client sent after its CONNECT, in order: waits until the client has gone.
  const std::vector<Packet>& received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

 private:
  bool ReadExact(int fd, std::string* out, size_t n) {
    out->resize(n);
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd, out->data() + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  bool ReadPacket(int fd, Packet* p) {
    *p = Packet();
    std::string b;
    if (!ReadExact(fd, &b, 1)) return false;
    const uint8_t first = static_cast<uint8_t>(b[0]);
    size_t len = 0;
    for (int shift = 0; shift < 28; shift += 7) {
      if (!ReadExact(fd, &b, 1)) return false;
      len |= static_cast<size_t>(b[0] & 0x7F) << shift;
      if ((b[0] & 0x80) == 0) break;
    }
    std::string body;
    if (!ReadExact(fd, &body, len)) return false;
    p->kind = first >> 4;
    p->qos = (first >> 1) & 3;
    auto u16 = [&](size_t at) {
      return static_cast<uint16_t>((static_cast<uint8_t>(body[at]) << 8) | static_cast<uint8_t>(body[at + 1]));
    };
    if (p->kind == 3 && p->qos > 0) p->id = u16(2 + u16(0));  // after the topic
    if (p->kind >= 4 && p->kind <= 8) p->id = u16(0);  // PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE
    return true;
  }
  void Serve() {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    conn_fd_.store(fd);
    Packet p;
    if (ReadPacket(fd, &p) && p.kind == 1) {
      (void)::send(fd, "\x20\x02\x00\x00", 4, MSG_NOSIGNAL);  // CONNACK: accepted
      while (ReadPacket(fd, &p)) {
        received_.push_back(p);
        const std::string reply = script_(p);
        if (!reply.empty()) (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
    }
    conn_fd_.store(-1);
    ::close(fd);
  }

  Script script_;
  int listen_fd_ = -1;
  std::atomic<int> conn_fd_{-1};
  int port_ = 0;
  std::thread thread_;
  std::vector<Packet> received_;
};

// Publishes `count` messages through a fresh client; `connected_after` says whether the client
// still had its connection when the batch ended.
void Publish(ScriptedBroker* broker, int qos, size_t count, std::vector<Status>* results,
             bool* connected_after = nullptr) {
  WireOptions o;
  o.host = "127.0.0.1";
  o.port = broker->port();
  o.client_id = "wire-test";
  o.connect_timeout = std::chrono::seconds(5);
  WireClient client(o);
  Status connected = client.Connect();
  ASSERT_TRUE(connected.ok()) << connected.ToString();
  std::vector<OutboundMessage> messages(count, OutboundMessage{"mhhs/test", "{}"});
  client.PublishBatch(messages, qos, 16, std::chrono::seconds(5), results);
  ASSERT_EQ(results->size(), count);
  if (connected_after) *connected_after = client.connected();
}

TEST(MqttWireTest, QosOneIsConfirmedByPuback) {
  ScriptedBroker broker([](const Packet& p) { return p.kind == 3 ? Ack(0x40, p.id) : ""; });
  std::vector<Status> results;
  bool connected = false;
  Publish(&broker, 1, 3, &results, &connected);
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(connected);
}

TEST(MqttWireTest, QosTwoIsConfirmedByPubrecThenPubcomp) {
  ScriptedBroker broker([](const Packet& p) {
    if (p.kind == 3) return Ack(0x50, p.id);  // PUBREC
    if (p.kind == 6) return Ack(0x70, p.id);  // PUBCOMP for the client's PUBREL
    return std::string();
  });
  std::vector<Status> results;
  Publish(&broker, 2, 3, &results);
  for (const Status& s : results) EXPECT_TRUE(s.ok()) << s.ToString();
  int pubrels = 0;
  for (const Packet& p : broker.received()) pubrels += p.kind == 6;
  EXPECT_EQ(pubrels, 3);
}

// Publishes two messages of QoS `qos` to a broker that answers each PUBLISH with `ack`; every
// message must fail as kUnavailable naming `what`, and the client must have disconnected.
std::vector<Status> ExpectProtocolError(int qos, uint8_t ack, const std::string& what) {
  ScriptedBroker broker([ack](const Packet& p) { return p.kind == 3 ? Ack(ack, p.id) : ""; });
  std::vector<Status> results;
  bool connected = true;
  Publish(&broker, qos, 2, &results, &connected);
  EXPECT_FALSE(connected);
  for (const Status& s : results) {
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_NE(s.message().find(what), std::string::npos) << s.ToString();
  }
  return results;
}

// Each of these used to count as a confirmation: the message would have been marked delivered
// although the broker had not taken it as the client meant.
TEST(MqttWireTest, APubcompForAQosOneMessageIsAProtocolError) {
  for (const Status& s : ExpectProtocolError(1, 0x70, "protocol error: the broker sent PUBCOMP")) {
    EXPECT_EQ(s.message().find("PUBREC"), std::string::npos) << "no PUBREC is due for QoS 1: " << s.ToString();
  }
}

TEST(MqttWireTest, APubackForAQosTwoMessageIsAProtocolError) { ExpectProtocolError(2, 0x40, "sent PUBACK"); }

TEST(MqttWireTest, APubcompBeforeThePubrecIsAProtocolError) {
  ScriptedBroker broker([](const Packet& p) { return p.kind == 3 ? Ack(0x70, p.id) : ""; });
  std::vector<Status> results;
  Publish(&broker, 2, 1, &results);
  EXPECT_EQ(results[0].code(), StatusCode::kUnavailable);
  EXPECT_NE(results[0].message().find("not yet acknowledged with PUBREC"), std::string::npos) << results[0].ToString();
  // No PUBREL went out: the client never saw a PUBREC.
  for (const Packet& p : broker.received()) EXPECT_NE(p.kind, 6);
}

TEST(MqttWireTest, APubcompForAnotherMessageThanTheOneReleasedIsAProtocolError) {
  // Two messages: the first gets its PUBREC; the broker then completes the second, which it
  // never acknowledged with a PUBREC.
  uint16_t first = 0;
  ScriptedBroker broker([&](const Packet& p) {
    if (p.kind != 3) return std::string();
    if (first == 0) {
      first = p.id;
      return Ack(0x50, p.id);
    }
    return Ack(0x70, p.id);
  });
  std::vector<Status> results;
  Publish(&broker, 2, 2, &results);
  EXPECT_NE(results[1].message().find("not yet acknowledged with PUBREC"), std::string::npos) << results[1].ToString();
  EXPECT_FALSE(results[0].ok());  // its PUBCOMP never came before the connection ended
}

// With its window full the client waits for many acknowledgements at once (a low-water mark
// on the socket). A broker with Nagle's algorithm on sends one small packet and holds the next
// until the client's side acknowledges it at the TCP level, which it does not while it sleeps
// without reading. This broker does the same in MQTT terms: with the window of 16 full it
// acknowledges only the first message and keeps the rest back until the client, having taken
// that one acknowledgement, sends the 17th. A client that waited for its mark alone would run
// into the publish timeout here.
TEST(MqttWireTest, ASingleAcknowledgementIsTakenWhileWaitingForMany) {
  int seen = 0;
  std::string held;
  ScriptedBroker broker([&](const Packet& p) {
    if (p.kind != 3) return std::string();
    ++seen;
    if (seen < 16) {
      held += Ack(0x40, p.id);
      return std::string();
    }
    if (seen == 16) {
      std::string first = held.substr(0, 4);
      held = held.substr(4) + Ack(0x40, p.id);
      return first;
    }
    std::string out = held + Ack(0x40, p.id);
    held.clear();
    return out;
  });
  std::vector<Status> results;
  bool connected = false;
  Publish(&broker, 1, 40, &results, &connected);
  for (size_t i = 0; i < results.size(); ++i) EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].ToString();
  EXPECT_TRUE(connected);
  size_t published = 0;
  for (const Packet& p : broker.received()) published += p.kind == 3;
  EXPECT_EQ(published, 40u);
}

TEST(MqttWireTest, AcknowledgingManyMessagesAnswersEachByItsQos) {
  ScriptedBroker broker([](const Packet& p) {
    if (p.kind != 8) return std::string();
    std::string suback{static_cast<char>(0x90), 0x03, static_cast<char>(p.id >> 8), static_cast<char>(p.id & 0xFF), 0x02};
    return suback + PublishPacket(1, 7, "a") + PublishPacket(0, 0, "b") + PublishPacket(1, 8, "c") +
           PublishPacket(2, 9, "d");
  });
  WireOptions o;
  o.host = "127.0.0.1";
  o.port = broker.port();
  o.client_id = "wire-test";
  {
    WireClient client(o);
    ASSERT_TRUE(client.Connect().ok());
    ASSERT_TRUE(client.Subscribe({"t"}, 2).ok());
    std::vector<InboundMessage> got(4);
    for (InboundMessage& m : got) {
      auto r = client.Receive(&m, std::chrono::seconds(5));
      ASSERT_TRUE(r.ok() && *r);
    }
    EXPECT_EQ(got[3].payload, "d");
    ASSERT_TRUE(client.Ack(got).ok());
    client.Close();
  }
  std::vector<std::pair<int, int>> seen;  // (packet type, packet id) after the SUBSCRIBE
  for (const Packet& p : broker.received()) {
    if (p.kind != 8) seen.emplace_back(p.kind, p.id);
  }
  // PUBACK 7, none for the QoS 0 message, PUBACK 8, PUBREC 9, then the DISCONNECT.
  std::vector<std::pair<int, int>> expected{{4, 7}, {4, 8}, {5, 9}, {14, 0}};
  EXPECT_EQ(seen, expected);
}

TEST(MqttWireTest, AMessageRefusedByItsMakerIsSkippedAndHoldsNothingBack) {
  ScriptedBroker broker([](const Packet& p) { return p.kind == 3 ? Ack(0x40, p.id) : ""; });
  WireOptions o;
  o.host = "127.0.0.1";
  o.port = broker.port();
  o.client_id = "wire-test";
  std::vector<Status> results;
  std::vector<size_t> made;
  {
    WireClient client(o);
    ASSERT_TRUE(client.Connect().ok());
    OutboundMessage m{"mhhs/test", ""};
    client.PublishBatch(
        5,
        [&](size_t i, Status* refused) -> const OutboundMessage* {
          made.push_back(i);
          if (i == 1 || i == 3) {
            *refused = InvalidArgument("too large: " + std::to_string(i));
            return nullptr;
          }
          m.payload = "m" + std::to_string(i);  // the same buffer each time
          return &m;
        },
        1, 2, std::chrono::seconds(5), &results);
    client.Close();
  }
  EXPECT_EQ(made, (std::vector<size_t>{0, 1, 2, 3, 4})) << "each message is made once, in order";
  ASSERT_EQ(results.size(), 5u);
  EXPECT_TRUE(results[0].ok() && results[2].ok() && results[4].ok());
  EXPECT_EQ(results[1].message(), "too large: 1");
  EXPECT_EQ(results[3].message(), "too large: 3");
  size_t published = 0;
  for (const Packet& p : broker.received()) published += p.kind == 3;
  EXPECT_EQ(published, 3u);
}

// The broker ends the connection in the middle of a batch: whatever was not confirmed, sent or
// not yet sent, must come back as not delivered, so that the sink offers it again. Only the
// confirmed message counts as delivered.
TEST(MqttWireTest, MessagesNotSentWhenTheConnectionEndsAreNotDelivered) {
  ScriptedBroker broker([](const Packet& p) {
    if (p.kind != 3) return std::string();
    return p.id == 1 ? Ack(0x40, p.id) : std::string("\xE0\x00", 2);  // then DISCONNECT
  });
  std::vector<Status> results;
  bool connected = true;
  Publish(&broker, 1, 40, &results, &connected);
  ASSERT_EQ(results.size(), 40u);
  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  for (size_t i = 1; i < results.size(); ++i) {
    EXPECT_FALSE(results[i].ok()) << "message " << i << " counted as delivered";
    EXPECT_EQ(results[i].code(), StatusCode::kUnavailable) << i << ": " << results[i].ToString();
  }
  EXPECT_NE(results.back().message().find("not sent"), std::string::npos) << results.back().ToString();
}

// Packet ids wrap at 65535. One still waiting for its acknowledgement must not be given to a
// newer message: the older one would never get a verdict (and would count as delivered), and
// its acknowledgement would settle the newer one.
TEST(MqttWireTest, APacketIdStillInFlightIsNotReusedWhenIdsWrap) {
  constexpr size_t kCount = 65600;
  ScriptedBroker broker([seen = size_t{0}](const Packet& p) mutable {
    if (p.kind != 3) return std::string();
    ++seen;
    if (seen == 1) return std::string();                          // the first is never acknowledged
    if (seen == kCount) return std::string("\xE0\x00", 2);        // then DISCONNECT after the last
    return Ack(0x40, p.id);
  });
  std::vector<Status> results;
  Publish(&broker, 1, kCount, &results);
  ASSERT_EQ(results.size(), kCount);
  EXPECT_FALSE(results[0].ok()) << "the unacknowledged first message counted as delivered";
  EXPECT_FALSE(results[kCount - 1].ok());
  size_t delivered = 0;
  for (const Status& r : results) delivered += r.ok();
  EXPECT_EQ(delivered, kCount - 2);
  uint16_t first_id = 0;
  std::vector<uint16_t> ids;
  for (const Packet& p : broker.received()) {
    if (p.kind != 3) continue;
    if (first_id == 0) first_id = p.id;
    else ids.push_back(p.id);
  }
  EXPECT_EQ(std::count(ids.begin(), ids.end(), first_id), 0) << "packet id " << first_id << " given out again";
}

}  // namespace
}  // namespace gw::connectors::mqtt
