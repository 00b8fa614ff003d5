// The checks PostgreSQL makes after our hook, made first (see login_checks.hpp).
extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_database.h"
#include "storage/lockdefs.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/relcache.h"
}

#include "pg/login_checks.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

// The database as InitPostgres will find it: by name in pg_database, through its index
// once the shared catalogs' relcache is complete, else by a heap scan (as its
// GetDatabaseTuple() does, right after this hook).
struct Database {
  Oid oid = InvalidOid;
  bool refuses = false;        // invalid, or does not allow connections
  int connection_limit = -1;   // datconnlimit
  Oid owner = InvalidOid;      // datdba
  Acl* acl = nullptr;          // datacl (palloc'd), or its default when the row has none
};

// The CONNECT privilege, from the row already read: PostgreSQL's object_aclcheck() would
// look the row up again by OID, through a catalog cache this early login has not filled,
// at two more page faults in the catalog's index.
bool may_connect(const Database& database, Oid role) {
  return aclmask(database.acl, role, database.owner, ACL_CONNECT, ACLMASK_ANY) != 0;
}

Database find_database(const char* name) {
  Database database;
  ScanKeyData key;
  ScanKeyInit(&key, Anum_pg_database_datname, BTEqualStrategyNumber, F_NAMEEQ, CStringGetDatum(name));
  Relation relation = table_open(DatabaseRelationId, AccessShareLock);
  SysScanDesc scan = systable_beginscan(relation, DatabaseNameIndexId, criticalSharedRelcachesBuilt, nullptr, 1, &key);
  if (HeapTuple tuple = systable_getnext(scan); HeapTupleIsValid(tuple)) {
    auto* form = reinterpret_cast<Form_pg_database>(GETSTRUCT(tuple));
    database.oid = form->oid;
    database.refuses = database_is_invalid_form(form) || !form->datallowconn;
    database.connection_limit = form->datconnlimit;
    database.owner = form->datdba;
    bool no_acl = false;
    const Datum acl = heap_getattr(tuple, Anum_pg_database_datacl, RelationGetDescr(relation), &no_acl);
    database.acl = no_acl ? acldefault(OBJECT_DATABASE, database.owner) : DatumGetAclPCopy(acl);
  }
  systable_endscan(scan);
  table_close(relation, AccessShareLock);
  return database;
}

}  // namespace

bool postgres_will_refuse(const Login& login) {
  // InitializeSessionUserId: the role exists, may log in, is below its connection limit
  // (our backend is not counted yet: PostgreSQL counts it and compares with >).
  if (!OidIsValid(login.role) || !login.can_login) return true;
  if (!login.superuser && login.connection_limit >= 0 && CountUserBackends(login.role) >= login.connection_limit)
    return true;
  // CheckMyDatabase: the database exists, is valid, allows connections, grants CONNECT,
  // is below its connection limit.
  if (login.attributes.database_name.empty()) return true;
  const Database database = find_database(login.attributes.database_name.data());
  if (!OidIsValid(database.oid) || database.refuses) return true;
  const bool refused = !login.superuser && (!may_connect(database, login.role) ||
                                            (database.connection_limit >= 0 &&
                                             CountDBConnections(database.oid) >= database.connection_limit));
  return refused;
}

}  // namespace connbudget::pg
