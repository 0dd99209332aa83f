// N-API glue for socket options and descriptor passing (SCM_RIGHTS between
// an agent and its successor or its listener keeper).
#include "addon_glue.h"

#include <errno.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fd_passing.h"
#include "glue_util.h"
#include "socket_ops.h"

namespace sluice {
namespace {

// tcpKeepalive(fd, idleSeconds, intervalSeconds, probes, userTimeoutMs):
// the kernel probes an idle peer and fails the socket (ETIMEDOUT) when it
// stops answering; TCP_USER_TIMEOUT bounds how long sent data may stay
// unacknowledged. Node's setKeepAlive() sets only the idle time.
Napi::Value TcpKeepaliveJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (size_t i = 0; i < 5; i++)
    if (!CheckNumber(info, i, "tcpKeepalive argument")) return env.Undefined();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int err = SetTcpKeepalive(fd, info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value(),
                            info[3].As<Napi::Number>().Int32Value(), info[4].As<Napi::Number>().Uint32Value());
  if (err) MakeError(env, err, "keepalive on fd", std::to_string(fd)).ThrowAsJavaScriptException();
  return env.Undefined();
}

// socketError(fd): the error pending on a socket (SO_ERROR), 0 when none;
// reading it clears it. libuv reports a reset that arrives after a partial
// read as end-of-file (POLLHUP), so a FIN is checked with this before it is
// forwarded: ECONNRESET here means the peer reset, not closed.
Napi::Value SocketErrorJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd")) return env.Undefined();
  return Napi::Number::New(env, PendingSocketError(info[0].As<Napi::Number>().Int32Value()));
}

// resetOnClose(fd, on): SO_LINGER {1, 0} when on (a close, or the process
// dying, resets the connection), {0, 0} when off (a normal close).
Napi::Value ResetOnCloseJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd")) return env.Undefined();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int err = SetResetOnClose(fd, info.Length() > 1 && info[1].ToBoolean());
  if (err) MakeError(env, err, "linger on fd", std::to_string(fd)).ThrowAsJavaScriptException();
  return env.Undefined();
}

// sendFds(socketFd, payload: Buffer, fds: number[], timeoutMs): writes the
// payload on a connected unix socket with the descriptors attached
// (SCM_RIGHTS). The receiver gets its own references: closing ours after
// does not close the sockets.
Napi::Value SendFdsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "socket fd") || !CheckBuffer(info, 1, "payload") || !CheckNumber(info, 3, "timeoutMs")) return env.Undefined();
  if (!info[2].IsArray()) {
    Napi::TypeError::New(env, "fds must be an array of numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[2].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsNumber()) {
      Napi::TypeError::New(env, "fds must be an array of numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    fds.push_back(v.As<Napi::Number>().Int32Value());
  }
  Napi::Buffer<char> payload = info[1].As<Napi::Buffer<char>>();
  int err = SendFds(info[0].As<Napi::Number>().Int32Value(), std::string(payload.Data(), payload.Length()), fds,
                    info[3].As<Napi::Number>().Int32Value());
  if (err) MakeError(env, err, "send descriptors on fd", std::to_string(info[0].As<Napi::Number>().Int32Value())).ThrowAsJavaScriptException();
  return env.Undefined();
}

// receiveFds(path, request: Buffer, timeoutMs): { payload: Buffer, fds:
// number[], socket: number } (one reply line; the connection stays open in
// `socket` until the caller closes it), or null when nothing listens at path
// (ENOENT, ECONNREFUSED). Blocks at most timeoutMs; throws on any other failure.
Napi::Value ReceiveFdsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckString(info, 0, "path") || !CheckBuffer(info, 1, "request") || !CheckNumber(info, 2, "timeoutMs")) return env.Undefined();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<char> request = info[1].As<Napi::Buffer<char>>();
  std::string payload;
  std::vector<int> fds;
  int sock = -1;
  int err = ReceiveFds(path, std::string(request.Data(), request.Length()), info[2].As<Napi::Number>().Int32Value(), &payload, &fds, &sock);
  if (err == -ENOENT || err == -ECONNREFUSED) return env.Null();
  if (err) {
    MakeError(env, err, "receive descriptors from", path).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("payload", Napi::Buffer<char>::Copy(env, payload.data(), payload.size()));
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (size_t i = 0; i < fds.size(); i++) list.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  out.Set("fds", list);
  out.Set("socket", Napi::Number::New(env, sock));
  return out;
}

// closeFd(fd): for a received descriptor that is not used after all.
Napi::Value CloseFdJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckNumber(info, 0, "fd")) return env.Undefined();
  close(info[0].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

}  // namespace

void InitSocketGlue(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpKeepalive", Napi::Function::New(env, TcpKeepaliveJs));
  exports.Set("socketError", Napi::Function::New(env, SocketErrorJs));
  exports.Set("resetOnClose", Napi::Function::New(env, ResetOnCloseJs));
  exports.Set("sendFds", Napi::Function::New(env, SendFdsJs));
  exports.Set("receiveFds", Napi::Function::New(env, ReceiveFdsJs));
  exports.Set("closeFd", Napi::Function::New(env, CloseFdJs));
}

}  // namespace sluice
