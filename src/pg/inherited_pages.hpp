// Lets every backend inherit the postmaster's mappings of the module's code and read-only
// data (inherited_pages.cpp).
#pragma once

namespace connbudget::pg {

// From _PG_init in the postmaster, once. Does nothing where it cannot.
void inherit_unwritten_pages();

}  // namespace connbudget::pg
