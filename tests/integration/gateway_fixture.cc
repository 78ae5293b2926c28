#include "tests/integration/gateway_fixture.h"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>

#include <signal.h>
#include <unistd.h>

#include <sstream>

namespace gw::testing {

Subscriber::Subscriber(const std::string& uri, const std::string& client_id, const std::string& filter)
    : filter_(filter), client_(uri, client_id, nullptr) {
  client_.set_message_callback([this](mqtt::const_message_ptr m) {
    std::lock_guard<std::mutex> l(mu_);
    messages_.emplace_back(m->get_topic(), m->to_string());
  });
}

Subscriber::~Subscriber() { Disconnect(); }

void Subscriber::Connect() {
  mqtt::connect_options opts;
  opts.set_clean_session(false);
  opts.set_keep_alive_interval(30);
  client_.connect(opts)->wait_for(std::chrono::seconds(10));
  if (!client_.is_connected()) throw std::runtime_error("subscriber could not connect");
  client_.subscribe(filter_, 1)->wait_for(std::chrono::seconds(10));
}

void Subscriber::Disconnect() {
  try {
    if (client_.is_connected()) client_.disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception&) {
  }
}

size_t Subscriber::Count() {
  std::lock_guard<std::mutex> l(mu_);
  return messages_.size();
}

std::vector<std::pair<std::string, std::string>> Subscriber::Messages() {
  std::lock_guard<std::mutex> l(mu_);
  return messages_;
}

std::multiset<std::string> Subscriber::Payloads() {
  std::lock_guard<std::mutex> l(mu_);
  std::multiset<std::string> out;
  for (const auto& m : messages_) out.insert(m.second);
  return out;
}

void PublishAll(const std::string& uri, const std::string& topic, const std::vector<std::string>& payloads) {
  mqtt::async_client client(uri, "test-publisher-" + std::to_string(::getpid()), 1000, nullptr);
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  client.connect(opts)->wait_for(std::chrono::seconds(10));
  if (!client.is_connected()) throw std::runtime_error("publisher could not connect to " + uri);
  std::vector<mqtt::delivery_token_ptr> tokens;
  for (const std::string& p : payloads) tokens.push_back(client.publish(mqtt::make_message(topic, p, 1, false)));
  for (auto& t : tokens) t->wait_for(std::chrono::seconds(10));
  client.disconnect()->wait_for(std::chrono::seconds(5));
}

GatewayTest::GatewayTest() : broker_(dir_ / "broker") { broker_.Start(); }

GatewayTest::~GatewayTest() {
  if (gateway_.Running()) gateway_.Stop(SIGKILL);
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- gateway log ----\n" << GatewayLog() << "---------------------\n";
  }
}

Reply HttpGet(int port, const std::string& path, const std::string& token) {
  Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port));
  Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, path, Poco::Net::HTTPMessage::HTTP_1_1);
  if (!token.empty()) req.set("Authorization", "Bearer " + token);
  session.sendRequest(req);
  Poco::Net::HTTPResponse resp;
  std::istream& in = session.receiveResponse(resp);
  Reply r;
  r.status = static_cast<int>(resp.getStatus());
  Poco::StreamCopier::copyToString(in, r.body);
  return r;
}

double MetricValue(const std::string& metrics, const std::string& series) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

std::string GatewayTest::WriteConfig(const std::string& extra) {
  config_path_ = dir_ / "gateway.ini";
  WriteFile(config_path_,
            "[gateway]\nadmin_listen = 127.0.0.1:" + std::to_string(admin_port_) + "\nshutdown_timeout_s = 3\nparticipant_mpid = UDMS\nparticipant_role = D\nenvironment = SIT\n"
            "flow_dir = " + SourceDir() + "/config/flows\nlog_level = debug\n"
            "[journal]\npath = " + dir_ / "journal.db" + "\n"
            "[source.inbox]\ntype = file\ndirectory = " + dir_ / "inbox" + "\narchive = " + dir_ / "archive" +
            "\nrejected = " + dir_ / "rejected" + "\nformat = dtn\nsettle_ms = 100\npoll_ms = 100\n"
            "[sink.backbone]\ntype = mqtt\nuri = " + broker_.uri() + "\nclient_id = UDMS-gw-test\nqos = 1\n"
            "topic = mhhs/{environment}/{type}/{sender_role}/{sender_mpid}\nretry_base_ms = 100\nretry_max_ms = 1000\n"
            "reconnect_max_ms = 1000\nconnect_timeout_s = 2\n"
            "[route.all]\nfrom = inbox\nto = backbone\n" + extra);
  return config_path_;
}

void GatewayTest::StartGateway() {
  if (config_path_.empty()) WriteConfig();
  // The log is appended across restarts: look for a start after what is there now.
  size_t from = GatewayLog().size();
  gateway_.Start({DaemonPath(), "--config", config_path_}, dir_ / "gateway.log");
  ASSERT_TRUE(WaitFor([&] { return GatewayLog().find("started:", from) != std::string::npos || !gateway_.Running(); },
                      std::chrono::seconds(20)));
  ASSERT_TRUE(gateway_.Running()) << GatewayLog();
}

int GatewayTest::StopGateway() { return gateway_.Stop(SIGTERM); }

void GatewayTest::KillGateway() { gateway_.Stop(SIGKILL); }

void GatewayTest::Drop(const std::string& source_path) {
  DropText(source_path.substr(source_path.find_last_of('/') + 1), ReadFileOrEmpty(source_path));
}

void GatewayTest::DropText(const std::string& name, const std::string& text) {
  std::string inbox = dir_ / "inbox";
  ::mkdir(inbox.c_str(), 0755);
  WriteFile(inbox + "/" + name + ".tmp", text);
  ASSERT_EQ(::rename((inbox + "/" + name + ".tmp").c_str(), (inbox + "/" + name).c_str()), 0);
}

std::vector<std::string> GatewayTest::Convert(const std::string& file) {
  std::string out;
  int rc = RunCommand({CtlPath(), "--flow-dir", SourceDir() + "/config/flows", "convert", file}, &out);
  EXPECT_EQ(rc, 0) << out;
  std::vector<std::string> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) if (!line.empty()) lines.push_back(line);
  return lines;
}

}  // namespace gw::testing
