// Shared by the N-API glue files: errors as JS objects that name the
// operation and its target, and argument checks.
#pragma once
#include <napi.h>

#include <string>

namespace sluice {

// "attach sluice_connect4 to /sys/fs/cgroup/x: Operation not permitted (EPERM)",
// with code, errno, op, target (and details, e.g. the verifier log) set.
Napi::Error MakeError(Napi::Env env, int err, const std::string& op, const std::string& target,
                      const std::string& details = "");

// Each throws a TypeError naming `what` and returns false when argument i is missing or of another type.
bool CheckBuffer(const Napi::CallbackInfo& info, size_t i, const char* what);
bool CheckNumber(const Napi::CallbackInfo& info, size_t i, const char* what);
bool CheckString(const Napi::CallbackInfo& info, size_t i, const char* what);

}  // namespace sluice
