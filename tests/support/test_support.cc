#include "tests/support/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gw::testing {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/gw-test.XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (std::getenv("GW_KEEP_TEMP") != nullptr) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    if (e.is_regular_file() && n[0] != '.') out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> DtnRecords(const std::string& text) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p < text.size()) {
    size_t nl = text.find('\n', p);
    std::string line = text.substr(p, nl == std::string::npos ? std::string::npos : nl - p);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line.rfind("ZHV", 0) != 0 && line.rfind("ZPT", 0) != 0) out.push_back(line);
    p = nl == std::string::npos ? text.size() : nl + 1;
  }
  return out;
}

std::vector<std::string> DtnRecordsInDir(const std::string& dir) {
  std::vector<std::string> all;
  for (const std::string& f : FilesIn(dir)) {
    auto r = DtnRecords(ReadFileOrEmpty(dir + "/" + f));
    all.insert(all.end(), r.begin(), r.end());
  }
  return all;
}

bool WaitForPort(int port, std::chrono::milliseconds timeout, const std::function<bool()>& alive) {
  return WaitFor(
             [&] {
               int fd = ::socket(AF_INET, SOCK_STREAM, 0);
               sockaddr_in a{};
               a.sin_family = AF_INET;
               a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
               a.sin_port = htons(static_cast<uint16_t>(port));
               bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
               ::close(fd);
               return ok || !alive();
             },
             timeout) &&
         alive();
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Process::~Process() {
  if (pid_ > 0) Stop(SIGKILL);
}

void Process::Start(const std::vector<std::string>& argv, const std::string& log_path,
                    const std::map<std::string, std::string>& env) {
  if (pid_ > 0) throw std::runtime_error("process already running");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    // Leave the test's signal mask and process group behind.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  pid_ = pid;
  status_ = -1;
}

bool Process::Running() {
  if (pid_ <= 0) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
    return false;
  }
  return true;
}

int Process::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return status_;
  if (!WaitFor([&] { return !Running(); }, timeout)) return -1;
  return status_;
}

int Process::Stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return status_;
  ::kill(pid_, sig);
  int r = Wait(timeout);
  if (r == -1) {
    ::kill(pid_, SIGKILL);
    r = Wait(std::chrono::seconds(10));
  }
  return r;
}

int RunCommand(const std::vector<std::string>& argv, std::string* output,
               const std::map<std::string, std::string>& env) {
  TempDir tmp;
  Process p;
  p.Start(argv, tmp / "out.txt", env);
  int rc = p.Wait(std::chrono::minutes(5));
  if (output) *output = ReadFileOrEmpty(tmp / "out.txt");
  return rc;
}

NotifySocket::NotifySocket(std::string path) : path_(std::move(path)) {
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("cannot bind " + path_);
  timeval tv{0, 100000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

NotifySocket::~NotifySocket() {
  ::close(fd_);
  ::unlink(path_.c_str());
}

std::vector<std::string> NotifySocket::WaitFor(const std::string& wanted, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    for (const std::string& m : seen_) {
      if (m.find(wanted) != std::string::npos) return seen_;
    }
    if (std::chrono::steady_clock::now() >= until) return seen_;
    ssize_t n = ::recv(fd_, buf, sizeof buf - 1, 0);
    if (n > 0) seen_.emplace_back(buf, static_cast<size_t>(n));
  }
}

Mosquitto::Mosquitto(std::string dir, int port, std::string listener_config)
    : dir_(std::move(dir)), port_(port ? port : FreePort()), listener_config_(std::move(listener_config)) {}

Postgres::Postgres(std::string dir) : dir_(std::move(dir)), port_(FreePort()) {
  for (const char* v : {"17", "16", "15", "14", "13"}) {
    std::string b = std::string("/usr/lib/postgresql/") + v + "/bin";
    if (::access((b + "/initdb").c_str(), X_OK) == 0) {
      bin_ = b;
      break;
    }
  }
  if (bin_.empty()) throw std::runtime_error("PostgreSQL server not installed (scripts/test installs postgresql)");
}

Postgres::~Postgres() { Stop(); }

std::vector<std::string> Postgres::AsOwner(std::vector<std::string> argv) const {
  if (::geteuid() != 0) return argv;
  argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "nobody", "--"});
  return argv;
}

void Postgres::Start() {
  ::mkdir(dir_.c_str(), 0755);
  std::string data = dir_ + "/data";
  ::mkdir(data.c_str(), 0700);
  if (::geteuid() == 0) {
    // The test's temporary folders are root's; the server runs as nobody.
    for (std::string d = dir_; d.size() > 1 && d != "/tmp"; d = d.substr(0, d.find_last_of('/'))) ::chmod(d.c_str(), 0755);
    std::string out;
    RunCommand({"/bin/chown", "-R", "nobody:nogroup", dir_}, &out);
  }
  std::string out;
  if (RunCommand(AsOwner({bin_ + "/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"}), &out) != 0) {
    throw std::runtime_error("initdb failed: " + out);
  }
  if (RunCommand(AsOwner({bin_ + "/pg_ctl", "-D", data, "-l", dir_ + "/server.log", "-w", "-o",
                          "-p " + std::to_string(port_) + " -k " + dir_ + " -c listen_addresses=127.0.0.1", "start"}), &out) != 0) {
    throw std::runtime_error("pg_ctl start failed: " + out + ReadFileOrEmpty(dir_ + "/server.log"));
  }
  started_ = true;
}

void Postgres::Stop() {
  if (!started_) return;
  std::string out;
  RunCommand(AsOwner({bin_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "fast", "-w", "stop"}), &out);
  started_ = false;
}

std::string Postgres::Sql(const std::string& sql) {
  std::string out;
  int rc = RunCommand({"/usr/bin/psql", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", "postgres", "-d", "postgres",
                       "-v", "ON_ERROR_STOP=1", "-At", "-c", sql}, &out);
  if (rc != 0) throw std::runtime_error("psql failed: " + out);
  return out;
}

std::string Postgres::Connection() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=postgres";
}

RabbitMq::RabbitMq(std::string dir)
    : dir_(std::move(dir)), mqtt_port_(FreePort()), amqp_port_(FreePort()), dist_port_(FreePort()) {
  node_ = "gwtest" + std::to_string(mqtt_port_) + "@localhost";
}

RabbitMq::~RabbitMq() { Stop(); }

std::map<std::string, std::string> RabbitMq::Env() const {
  return {{"HOME", dir_}, {"RABBITMQ_NODENAME", node_}, {"RABBITMQ_MNESIA_BASE", dir_ + "/mnesia"},
          {"RABBITMQ_LOG_BASE", dir_ + "/log"}, {"RABBITMQ_ENABLED_PLUGINS_FILE", dir_ + "/enabled_plugins"},
          {"RABBITMQ_CONFIG_FILE", dir_ + "/rabbitmq"}, {"RABBITMQ_DIST_PORT", std::to_string(dist_port_)},
          {"ERL_EPMD_ADDRESS", "127.0.0.1"}, {"RABBITMQ_PID_FILE", dir_ + "/pid"}};
}

void RabbitMq::Start() {
  const char* bin = "/usr/lib/rabbitmq/bin/rabbitmq-server";
  if (::access(bin, X_OK) != 0) throw std::runtime_error("rabbitmq-server is not installed (scripts/test installs it)");
  ::mkdir(dir_.c_str(), 0755);
  WriteFile(dir_ + "/enabled_plugins", "[rabbitmq_mqtt].\n");
  WriteFile(dir_ + "/rabbitmq.conf", "listeners.tcp.default = 127.0.0.1:" + std::to_string(amqp_port_) +
                                         "\nmqtt.listeners.tcp.default = 127.0.0.1:" + std::to_string(mqtt_port_) +
                                         "\nmqtt.allow_anonymous = true\nmqtt.default_user = guest\nmqtt.default_pass = guest\n"
                                         "loopback_users.guest = false\n");
  process_.Start({bin}, dir_ + "/server.out", Env());
  if (!WaitForPort(mqtt_port_, std::chrono::seconds(60), [&] { return process_.Running(); })) {
    throw std::runtime_error("RabbitMQ did not start; see " + dir_ + "/server.out");
  }
}

void RabbitMq::Stop() {
  if (!process_.Running()) return;
  std::string out;
  RunCommand({"/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node_, "stop"}, &out, Env());
  process_.Stop(SIGTERM, std::chrono::seconds(20));
  RunCommand({"/usr/bin/epmd", "-kill"}, &out, {{"ERL_EPMD_ADDRESS", "127.0.0.1"}});
}

namespace {

void RunOpenssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  if (RunCommand(argv, &out) != 0) throw std::runtime_error("openssl failed: " + out);
}

void MakeCa(const std::string& dir, const std::string& name, const std::string& cn) {
  RunOpenssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/" + name + ".key", "-out",
              dir + "/" + name + ".crt", "-days", "30", "-subj", "/CN=" + cn});
}

// A key (`newkey` as openssl req takes it) and a certificate for `subject` signed by `ca`.
void MakeLeaf(const std::string& dir, const std::string& name, const std::string& subject, const std::string& ext,
              const std::string& days, const std::string& ca = "ca", const std::string& newkey = "rsa:2048") {
  std::vector<std::string> req = {"req", "-newkey", newkey, "-nodes", "-keyout", dir + "/" + name + ".key", "-out",
                                  dir + "/" + name + ".csr", "-subj", subject};
  if (newkey == "ec") req = {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                             dir + "/" + name + ".key", "-out", dir + "/" + name + ".csr", "-subj", subject};
  if (newkey == "ec384") req = {"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384", "-nodes", "-keyout",
                                dir + "/" + name + ".key", "-out", dir + "/" + name + ".csr", "-subj", subject};
  RunOpenssl(req);
  WriteFile(dir + "/" + name + ".ext", ext);
  RunOpenssl({"x509", "-req", "-in", dir + "/" + name + ".csr", "-CA", dir + "/" + ca + ".crt", "-CAkey", dir + "/" + ca + ".key",
              "-CAcreateserial", "-out", dir + "/" + name + ".crt", "-days", days, "-extfile", dir + "/" + name + ".ext"});
  ::chmod((dir + "/" + name + ".key").c_str(), 0600);
}

}  // namespace

void MakeTestPki(const std::string& dir) {
  MakeCa(dir, "ca", "mhhs-test-ca");
  MakeCa(dir, "other-ca", "some-other-ca");
  MakeLeaf(dir, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n", "30");
  MakeLeaf(dir, "client", "/CN=UDMS", "extendedKeyUsage=clientAuth\n", "30");
  MakeLeaf(dir, "client2", "/CN=MRCY", "extendedKeyUsage=clientAuth\n", "30");
}

void MakeSigningPki(const std::string& dir) {
  if (::access((dir + "/ca.crt").c_str(), R_OK) != 0) MakeCa(dir, "ca", "mhhs-test-ca");
  if (::access((dir + "/other-ca.crt").c_str(), R_OK) != 0) MakeCa(dir, "other-ca", "some-other-ca");
  const std::string sig = "keyUsage=critical,digitalSignature,nonRepudiation\n";
  MakeLeaf(dir, "udms", "/O=Test Data Services/OU=UDMS/CN=udms.example", sig, "30");
  MakeLeaf(dir, "mrcy", "/CN=MRCY", sig, "30");
  MakeLeaf(dir, "ec-udms", "/CN=UDMS", sig, "30", "ca", "ec");
  MakeLeaf(dir, "ec384-udms", "/CN=UDMS", sig, "30", "ca", "ec384");
  MakeLeaf(dir, "expired-udms", "/CN=UDMS", sig, "-1");
  MakeLeaf(dir, "encipher-udms", "/CN=UDMS", "keyUsage=critical,keyEncipherment\n", "30");
  MakeLeaf(dir, "rogue-udms", "/CN=UDMS", sig, "30", "other-ca");
  MakeLeaf(dir, "weak-udms", "/CN=UDMS", sig, "30", "ca", "rsa:1024");
  // A self-signed participant certificate, trusted only by pinning it.
  RunOpenssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/pinned-udms.key", "-out",
              dir + "/pinned-udms.crt", "-days", "30", "-subj", "/CN=UDMS"});
  ::chmod((dir + "/pinned-udms.key").c_str(), 0600);
}

std::string SharedPki(const std::string& name) {
  static TempDir* dir = [] {
    auto* d = new TempDir();  // lives as long as the process; removed by nobody but /tmp
    MakeTestPki(d->path());
    MakeSigningPki(d->path());
    return d;
  }();
  return *dir / name;
}

Mosquitto::~Mosquitto() { Stop(); }

void Mosquitto::Start() {
  const char* bin = "/usr/sbin/mosquitto";
  if (::access(bin, X_OK) != 0) throw std::runtime_error("mosquitto is not installed (scripts/test installs it)");
  ::mkdir(dir_.c_str(), 0755);
  // As root, Mosquitto would drop to its own user and lose access to this folder.
  std::string user = ::geteuid() == 0 ? "user root\n" : "";
  std::string listener = listener_config_.empty() ? "allow_anonymous true\n" : listener_config_;
  WriteFile(dir_ + "/mosquitto.conf", user + "listener " + std::to_string(port_) + " 127.0.0.1\n" + listener +
                                          // Tests count every message at their subscribers; under load a
                                          // subscriber falls behind, and the default queue of 1000 per
                                          // client would drop messages the gateway delivered.
                                          "max_queued_messages 0\n"
                                          "persistence true\npersistence_location " + dir_ +
                                          "/\nautosave_interval 1\nlog_dest file " + dir_ + "/mosquitto.log\n");
  process_.Start({bin, "-c", dir_ + "/mosquitto.conf"}, dir_ + "/stdout.log");
  if (!WaitForPort(port_, std::chrono::seconds(10), [&] { return process_.Running(); })) {
    throw std::runtime_error("mosquitto did not start; see " + dir_ + "/mosquitto.log");
  }
}

void Mosquitto::Stop() { process_.Stop(SIGTERM, std::chrono::seconds(10)); }

std::string SourceDir() { return GW_TEST_SOURCE_DIR; }
std::string BinaryDir() { return GW_TEST_BINARY_DIR; }
std::string DaemonPath() { return GW_TEST_DAEMON; }
std::string CtlPath() { return GW_TEST_CTL; }

}  // namespace gw::testing
