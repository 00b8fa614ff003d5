// The module's read-only data, made the postmaster's own copy so that backends inherit its
// mappings. A forked backend inherits the page-table entries of a private mapping only if
// the parent has written some page of it (Linux copies them only then; otherwise the child
// faults each page in again on its first read): every login then paid a read fault (about
// 6 us on a virtual machine) for the module's first constant. At postmaster start the
// module's read-only segments are briefly made writable and each page rewritten with its
// own bytes.
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

int copy_read_only_segments(dl_phdr_info* info, std::size_t, void* module_base) {
  if (reinterpret_cast<void*>(info->dlpi_addr) != module_base) return 0;
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_LOAD || segment.p_flags != PF_R) continue;
    const std::uintptr_t start = (info->dlpi_addr + segment.p_vaddr) & ~(page - 1);
    const std::uintptr_t end = (info->dlpi_addr + segment.p_vaddr + segment.p_memsz + page - 1) & ~(page - 1);
    auto* const pages = reinterpret_cast<void*>(start);
    if (mprotect(pages, end - start, PROT_READ | PROT_WRITE) != 0) continue;  // then backends fault, as before
    for (std::uintptr_t at = start; at < end; at += page) {
      volatile char* const byte = reinterpret_cast<volatile char*>(at);
      *byte = *byte;
    }
    mprotect(pages, end - start, PROT_READ);
  }
  return 1;
}

}  // namespace

void inherit_read_only_pages() {
  Dl_info module;
  if (dladdr(reinterpret_cast<void*>(&inherit_read_only_pages), &module) == 0) return;
  dl_iterate_phdr(copy_read_only_segments, module.dli_fbase);
}

}  // namespace connbudget::pg

#else
namespace connbudget::pg {
void inherit_read_only_pages() {}  // other systems: backends fault the pages in, as they may
}  // namespace connbudget::pg
#endif
