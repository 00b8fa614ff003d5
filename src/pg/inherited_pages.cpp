// The module's code and read-only data, made the postmaster's own copy so that backends
// inherit its mappings. A forked backend inherits the page-table entries of a private
// mapping only if the parent has written some page of it (Linux copies them only then;
// otherwise the child faults each page in again on its first read): every login then paid
// read faults (about 6 us each on a virtual machine) for the module's first constant and
// for each 64 KB window of its code it ran. At postmaster start each segment the module
// does not write is briefly made writable too and each page rewritten with its own bytes.
extern "C" {
#include "postgres.h"
}

#include "pg/inherited_pages.hpp"

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace connbudget::pg {
namespace {

// The protection a segment the module does not write is mapped with: read, and for code
// execute.
int protection_of(const ElfW(Phdr)& segment) { return PROT_READ | ((segment.p_flags & PF_X) ? PROT_EXEC : 0); }

int copy_unwritten_segments(dl_phdr_info* info, std::size_t, void* module_base) {
  if (reinterpret_cast<void*>(info->dlpi_addr) != module_base) return 0;
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD || (segment.p_flags & PF_W) || !(segment.p_flags & PF_R)) continue;
    const std::uintptr_t start = (info->dlpi_addr + segment.p_vaddr) & ~(page - 1);
    const std::uintptr_t end = (info->dlpi_addr + segment.p_vaddr + segment.p_memsz + page - 1) & ~(page - 1);
    auto* const pages = reinterpret_cast<void*>(start);
    // The code keeps running while it is rewritten (this function is in it): it stays
    // executable. Where a system refuses (writable code), backends fault, as before.
    if (mprotect(pages, end - start, protection_of(segment) | PROT_WRITE) != 0) continue;
    for (std::uintptr_t at = start; at < end; at += page) {
      volatile char* const byte = reinterpret_cast<volatile char*>(at);
      *byte = *byte;
    }
    mprotect(pages, end - start, protection_of(segment));
  }
  return 1;
}

}  // namespace

void inherit_unwritten_pages() {
  Dl_info module;
  if (dladdr(reinterpret_cast<void*>(&inherit_unwritten_pages), &module) == 0) return;
  dl_iterate_phdr(copy_unwritten_segments, module.dli_fbase);
}

}  // namespace connbudget::pg

#else
namespace connbudget::pg {
void inherit_unwritten_pages() {}  // other systems: backends fault the pages in, as they may
}  // namespace connbudget::pg
#endif
