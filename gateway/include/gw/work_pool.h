// WorkPool: a fixed set of threads that run submitted tasks in order of submission. The
// pipeline signs events on it, so that a batch is signed on every core while the source
// thread decodes the next one, without starting threads per batch.
// Thread-safety: Run() from any thread. The destructor finishes the tasks already queued.
#ifndef GW_WORK_POOL_H_
#define GW_WORK_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gw/log.h"
#include "mhhs/status.h"

namespace gw {

class WorkPool {
 public:
  // `threads` at least 1; each thread is named `name` (for top, perf and the admin endpoint).
  WorkPool(size_t threads, const std::string& name) {
    for (size_t i = 0; i < std::max<size_t>(1, threads); ++i) {
      threads_.emplace_back([this, name] {
        NameThread(name);
        Loop();
      });
    }
  }
  ~WorkPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  size_t size() const { return threads_.size(); }

  // Queues `task`; its Status arrives through the future.
  std::future<Status> Run(std::function<Status()> task) {
    auto job = std::make_shared<std::packaged_task<Status()>>(std::move(task));
    std::future<Status> out = job->get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back([job] { (*job)(); });
    }
    cv_.notify_one();
    return out;
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace gw

#endif  // GW_WORK_POOL_H_
