// N-API glue for network namespaces and interfaces: a pod netns's cookie and
// its TCP connections (each on a thread of its own, see bpf_ops.cc), an
// interface's index in this process's netns.
#include "addon_glue.h"

#include <errno.h>
#include <net/if.h>

#include "bpf_ops.h"
#include "glue_util.h"

namespace sluice {
namespace {

// Work inside a pod's netns: its cookie, or how many TCP connections it has.
class NetnsWorker : public Napi::AsyncWorker {
 public:
  enum class What { kCookie, kEstablishedTcp };
  NetnsWorker(Napi::Env env, std::string path, What what)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), what_(what) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    err_ = what_ == What::kCookie ? NetnsCookie(path_, &cookie_) : NetnsEstablishedTcp(path_, &count_);
  }
  void OnOK() override {
    if (err_)
      deferred_.Reject(MakeError(Env(), err_, what_ == What::kCookie ? "netns cookie of" : "count connections in", path_).Value());
    else if (what_ == What::kCookie)
      deferred_.Resolve(Napi::BigInt::New(Env(), cookie_));
    else
      deferred_.Resolve(Napi::Number::New(Env(), count_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  What what_;
  uint64_t cookie_ = 0;
  uint32_t count_ = 0;
  int err_ = 0;
};

Napi::Value IfIndexJs(const Napi::CallbackInfo& info) {
  if (!CheckString(info, 0, "interface")) return info.Env().Undefined();
  std::string name = info[0].As<Napi::String>();
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) {
    MakeError(info.Env(), -errno, "interface", name).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), idx);
}

Napi::Value NetnsJs(const Napi::CallbackInfo& info, NetnsWorker::What what) {
  if (!CheckString(info, 0, "netnsPath")) return info.Env().Undefined();
  auto* w = new NetnsWorker(info.Env(), info[0].As<Napi::String>(), what);
  w->Queue();
  return w->Promise();
}

Napi::Value NetnsCookieJs(const Napi::CallbackInfo& info) { return NetnsJs(info, NetnsWorker::What::kCookie); }

Napi::Value NetnsEstablishedTcpJs(const Napi::CallbackInfo& info) {
  return NetnsJs(info, NetnsWorker::What::kEstablishedTcp);
}

}  // namespace

void InitNetnsGlue(Napi::Env env, Napi::Object exports) {
  exports.Set("ifIndex", Napi::Function::New(env, IfIndexJs));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookieJs));
  exports.Set("netnsEstablishedTcp", Napi::Function::New(env, NetnsEstablishedTcpJs));
}

}  // namespace sluice
