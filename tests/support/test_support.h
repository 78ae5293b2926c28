// Test support: temporary folders, free loopback ports, child processes, and a real Mosquitto
// broker started on 127.0.0.1 in a temporary folder. Used by unit and integration tests.
#ifndef GW_TESTS_SUPPORT_TEST_SUPPORT_H_
#define GW_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace gw::testing {

// A fresh folder under $TMPDIR (or /tmp), removed with its contents on destruction
// unless the environment sets GW_KEEP_TEMP.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free when asked.
int FreePort();

void WriteFile(const std::string& path, const std::string& content);
std::string ReadFileOrEmpty(const std::string& path);
// Regular files in `dir` whose names do not start with '.', sorted.
std::vector<std::string> FilesIn(const std::string& dir);

// The records of a DTN file between its ZHV and ZPT, CRLF folded to LF.
std::vector<std::string> DtnRecords(const std::string& text);

// The records of every DTN file in `dir`, in file-name order.
std::vector<std::string> DtnRecordsInDir(const std::string& dir);

// True once 127.0.0.1:port accepts a TCP connection within `timeout`, or false; stops early
// when `alive` turns false.
bool WaitForPort(int port, std::chrono::milliseconds timeout, const std::function<bool()>& alive);

// Polls `pred` every 20 ms until it is true or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

// A child process with stdout and stderr sent to files.
class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts `argv` with extra environment variables; output goes to `log_path`.
  void Start(const std::vector<std::string>& argv, const std::string& log_path,
             const std::map<std::string, std::string>& env = {});
  bool Running();
  // Sends `sig` and waits for the exit; returns the exit status (128+signal when killed).
  int Stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Waits for the exit without signalling; -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// Runs a command to completion; returns its exit code and puts stdout+stderr in `output`.
int RunCommand(const std::vector<std::string>& argv, std::string* output,
               const std::map<std::string, std::string>& env = {});

// A datagram socket standing in for systemd's notify socket (NOTIFY_SOCKET).
class NotifySocket {
 public:
  explicit NotifySocket(std::string path);
  ~NotifySocket();
  const std::string& path() const { return path_; }
  // Collects datagrams until one contains `wanted` or `timeout` passes; returns all received.
  std::vector<std::string> WaitFor(const std::string& wanted, std::chrono::milliseconds timeout);

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<std::string> seen_;
};

// A real Mosquitto on 127.0.0.1:port with its config and log in `dir`.
class Mosquitto {
 public:
  // `listener_config` replaces the plain anonymous listener settings (for TLS and ACLs).
  explicit Mosquitto(std::string dir, int port = 0, std::string listener_config = "");
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return process_.pid(); }
  ~Mosquitto();
  // Starts (or restarts) the broker and waits until it accepts connections.
  void Start();
  void Stop();
  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string dir_;
  int port_;
  std::string listener_config_;
  Process process_;
};

// A real PostgreSQL server on 127.0.0.1:port with its cluster in `dir`, made by initdb and run
// by pg_ctl. PostgreSQL refuses to run as root: as root the cluster belongs to `nobody`.
class Postgres {
 public:
  explicit Postgres(std::string dir);
  ~Postgres();
  void Start();
  void Stop();
  int port() const { return port_; }
  // Runs SQL with psql as the superuser; returns psql's output (unaligned, tuples only).
  std::string Sql(const std::string& sql);
  // A POCO connection string for the gateway.
  std::string Connection() const;

 private:
  std::vector<std::string> AsOwner(std::vector<std::string> argv) const;
  std::string dir_;
  int port_;
  std::string bin_;
  bool started_ = false;
};

// A real RabbitMQ node with its MQTT plugin on 127.0.0.1:mqtt_port, all its files in `dir`.
// Erlang's port mapper (epmd, port 4369) is started with it and stopped after it.
class RabbitMq {
 public:
  explicit RabbitMq(std::string dir);
  ~RabbitMq();
  void Start();
  void Stop();
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(mqtt_port_); }

 private:
  std::map<std::string, std::string> Env() const;
  std::string dir_;
  int mqtt_port_, amqp_port_, dist_port_;
  std::string node_;
  Process process_;
};

// Test certificates made with openssl in `dir`: ca.{crt,key}; server.{crt,key} for 127.0.0.1
// and localhost; client.{crt,key} (CN=UDMS) and client2.{crt,key} (CN=MRCY) signed by the CA;
// other-ca.crt, a CA that signed nothing here.
void MakeTestPki(const std::string& dir);
// Signing identities for [security] tests, made with openssl in `dir` (a CA is made when
// MakeTestPki has not made one): NAME.key / NAME.crt for udms (RSA 2048, OU=UDMS), mrcy
// (CN=MRCY), ec-udms (P-256), ec384-udms (P-384), expired-udms (expired yesterday),
// encipher-udms (keyUsage keyEncipherment only), rogue-udms (from other-ca), weak-udms
// (RSA 1024) and pinned-udms (self-signed). Keys are mode 0600.
void MakeSigningPki(const std::string& dir);
// `name` in a folder holding both of the above, made once per test process and kept until it
// ends (making keys takes seconds; every fixture that needs them shares one set).
std::string SharedPki(const std::string& name);

// The project's source tree and built binaries (from the build system).
// The build tree the tests were built in (for `cmake --install`).
std::string BinaryDir();
std::string SourceDir();
std::string DaemonPath();
std::string CtlPath();

}  // namespace gw::testing

#endif  // GW_TESTS_SUPPORT_TEST_SUPPORT_H_
