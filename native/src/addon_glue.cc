#include "addon_glue.h"

namespace sluice {

Napi::Object InitGlue(Napi::Env env, Napi::Object exports) {
  InitBpfGlue(env, exports);
  InitNetnsGlue(env, exports);
  InitRelayGlue(env, exports);
  InitSocketGlue(env, exports);
  return exports;
}

}  // namespace sluice
