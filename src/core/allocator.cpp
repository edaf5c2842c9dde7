// retain_freed_memory (allocator.hpp): two mallopt calls. Only glibc's malloc is tuned; a malloc
// preloaded by the user (jemalloc, tcmalloc) ignores them, which is fine: those cache already.
#include "apricot/core/allocator.hpp"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace apricot {

bool retain_freed_memory() {
  const char* env = std::getenv("APRICOT_MALLOC");
  if (env && std::strcmp(env, "system") == 0) return false;
#ifdef M_MMAP_MAX
  mallopt(M_MMAP_MAX, 0);        // large blocks from the heap, reused after free (glibc still falls
                                 // back to mmap when the heap cannot grow)
  mallopt(M_TRIM_THRESHOLD, -1);  // never give the heap top back to the kernel
  return true;
#else
  return false;
#endif
}

}  // namespace apricot
