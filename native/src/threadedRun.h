// What the addon's measurement loops (ChurnRun, ScriptRun) share: worker threads released
// together, the first failure any of them meets, and the JS object whose start() runs them off
// the JS thread and resolves a promise. The loops differ only in what a thread does per
// operation and in the result they hand back.
#pragma once
#include <napi.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <atomic>
#include <string>
#include <vector>

#include "errors.h"

namespace sockbench {

inline double NowSeconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// An errno-shaped code for "the program ran and exited with a non-zero status".
constexpr int kExitedNonZero = -1;

// The first failure any thread reports; later ones (often consequences) are dropped.
class FirstFailure {
 public:
  void Record(const std::string& call, int err, const std::string& detail = "") {
    pthread_mutex_lock(&lock_);
    if (!failed_.load()) {
      call_ = call;
      detail_ = detail;
      err_ = err;
      failed_.store(true);
    }
    pthread_mutex_unlock(&lock_);
  }
  bool Happened() const { return failed_.load(std::memory_order_relaxed); }
  Napi::Error ToError(Napi::Env env) const {
    if (err_ == kExitedNonZero) return Napi::Error::New(env, detail_ + " exited with a non-zero status");
    return SyscallError(env, call_, err_, detail_);
  }

 private:
  pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
  std::atomic<bool> failed_{false};
  std::string call_, detail_;
  int err_ = 0;
};

// Threads announce they are ready (their untimed preparation done) and wait to be released
// together, so the clock starts with all of them at the line.
class StartGate {
 public:
  void Arrive() {
    ready_.fetch_add(1);
    while (!go_.load(std::memory_order_acquire)) sched_yield();
  }
  // Waits for n arrivals, releases them, and returns the release time.
  double Release(int n) {
    while (ready_.load() < n) sched_yield();
    double t = NowSeconds();
    go_.store(true, std::memory_order_release);
    return t;
  }

 private:
  std::atomic<int> ready_{0};
  std::atomic<bool> go_{false};
};

// Starts main(&w) for each worker (W has a pthread_t `thread`), on stacks of stackBytes.
// Returns how many started; a refusal is recorded as the run's failure.
template <typename W>
int StartThreads(std::vector<W>& workers, size_t stackBytes, void* (*main)(void*), FirstFailure& failure) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stackBytes);
  int started = 0;
  for (auto& w : workers) {
    int err = pthread_create(&w.thread, &attr, main, &w);
    if (err != 0) {
      failure.Record("pthread_create", err);
      break;
    }
    started++;
  }
  pthread_attr_destroy(&attr);
  return started;
}

// Joins the first `started` workers and returns the latest finishedAt (W has one).
template <typename W>
double JoinThreads(std::vector<W>& workers, int started, double start) {
  double end = start;
  for (int i = 0; i < started; i++) {
    pthread_join(workers[i].thread, nullptr);
    if (workers[i].finishedAt > end) end = workers[i].finishedAt;
  }
  return end;
}

// The async half of a run: Execute() (worker thread) fills failure_, seconds_, stopped_ and
// whatever Result() needs; OnOK (JS thread) rejects with the failure or resolves with Result()
// plus seconds and stopped.
template <typename Owner>
class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, Owner* owner) : Napi::AsyncWorker(env), owner_(owner), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  virtual Napi::Object Result(Napi::Env env) = 0;
  Owner* owner_;
  FirstFailure failure_;
  double seconds_ = 0;
  bool stopped_ = false;

 private:
  void OnOK() override {
    Napi::Env env = Env();
    owner_->Finished();
    if (failure_.Happened()) {
      deferred_.Reject(failure_.ToError(env).Value());
      return;
    }
    Napi::Object result = Result(env);
    result.Set("seconds", Napi::Number::New(env, seconds_));
    result.Set("stopped", Napi::Boolean::New(env, stopped_));
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override {
    owner_->Finished();
    deferred_.Reject(e.Value());
  }
  Napi::Promise::Deferred deferred_;
};

// The JS object: new X(options); x.start() once, a promise; x.stop() asks the threads to end.
// Derived parses its options in its constructor and names its RunWorker subclass as Worker.
template <typename Derived>
class ThreadedRun : public Napi::ObjectWrap<Derived> {
 public:
  std::atomic<bool> stop{false};
  // Drops the reference that kept this object alive while its threads ran.
  void Finished() {
    running_ = false;
    self_.Reset();
  }
  static void Register(Napi::Env env, Napi::Object exports, const char* name) {
    using Method = Napi::Value (Derived::*)(const Napi::CallbackInfo&);
    Napi::Function ctor = Napi::ObjectWrap<Derived>::DefineClass(env, name, {
        Napi::ObjectWrap<Derived>::InstanceMethod("start", static_cast<Method>(&ThreadedRun::Start)),
        Napi::ObjectWrap<Derived>::InstanceMethod("stop", static_cast<Method>(&ThreadedRun::Stop)),
    });
    exports.Set(name, ctor);
  }

 protected:
  explicit ThreadedRun(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {}

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (running_ || started_) throw Napi::Error::New(info.Env(), "a run can be started once");
    started_ = running_ = true;
    auto* worker = new typename Derived::Worker(info.Env(), static_cast<Derived*>(this));
    Napi::Promise promise = worker->Promise();
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
    worker->Queue();
    return promise;
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    stop.store(true);
    return info.Env().Undefined();
  }
  bool started_ = false;
  bool running_ = false;
  Napi::ObjectReference self_;
};

}  // namespace sockbench
