#include "glue_util.h"

#include <string.h>

namespace sluice {

Napi::Error MakeError(Napi::Env env, int err, const std::string& op, const std::string& target,
                      const std::string& details) {
  int e = err < 0 ? -err : err;
  const char* name = strerrorname_np(e);
  std::string code = name ? name : "EUNKNOWN";
  std::string msg = op + (target.empty() ? "" : " " + target) + ": " + strerror(e) + " (" + code + ")";
  Napi::Error error = Napi::Error::New(env, msg);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, e));
  error.Set("op", Napi::String::New(env, op));
  error.Set("target", Napi::String::New(env, target));
  if (!details.empty()) error.Set("details", Napi::String::New(env, details));
  return error;
}

bool CheckBuffer(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsBuffer()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool CheckNumber(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

bool CheckString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) {
    Napi::TypeError::New(info.Env(), std::string(what) + " must be a string").ThrowAsJavaScriptException();
    return false;
  }
  return true;
}

}  // namespace sluice
