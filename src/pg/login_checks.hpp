// What PostgreSQL checks right after our hook, checked before it: a login PostgreSQL is
// about to refuse (no such role, a role that may not log in or has reached its own
// CONNECTION LIMIT, no such database, one that does not allow connections or is invalid,
// no CONNECT privilege, the database's CONNECTION LIMIT reached) takes no place in a budget
// or its queue: the hook lets it go on uncounted, to PostgreSQL's own error. The same
// catalogs and counts PostgreSQL reads (pg_authid, pg_database, the PGPROCs), before our
// lock.
#pragma once

#include "pg/login_attributes.hpp"

namespace connbudget::pg {

// True if PostgreSQL will refuse this login after authentication.
bool postgres_will_refuse(const Login& login);

}  // namespace connbudget::pg
