// The checks PostgreSQL makes after our hook, made first (see login_checks.hpp).
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "storage/procarray.h"
#include "utils/syscache.h"
}

#include "pg/login_checks.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {

bool postgres_will_refuse(const Login& login) {
  // InitializeSessionUserId: the role exists, may log in, is below its connection limit
  // (our backend is not counted yet: PostgreSQL counts it and compares with >).
  if (!OidIsValid(login.role) || !login.can_login) return true;
  if (!login.superuser && login.connection_limit >= 0 && CountUserBackends(login.role) >= login.connection_limit)
    return true;
  // CheckMyDatabase: the database exists, is valid, allows connections, grants CONNECT,
  // is below its connection limit.
  const char* name = login.attributes.database_name.data();
  const Oid database = login.attributes.database_name.empty() ? InvalidOid : get_database_oid(name, true);
  if (!OidIsValid(database)) return true;
  HeapTuple tuple = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(database));
  if (!HeapTupleIsValid(tuple)) return true;
  auto* form = reinterpret_cast<Form_pg_database>(GETSTRUCT(tuple));
  const bool refused = database_is_invalid_form(form) || !form->datallowconn ||
                       (!login.superuser && (!may_connect(database, login.role) ||
                                             (form->datconnlimit >= 0 &&
                                              CountDBConnections(database) >= form->datconnlimit)));
  ReleaseSysCache(tuple);
  return refused;
}

}  // namespace connbudget::pg
