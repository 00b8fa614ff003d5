// Collects a login's LoginAttributes from the server: from the Port of a real login, or
// from match()'s arguments. Uses catalog caches, so callers must not hold our lock.
#pragma once

extern "C" {
#include "postgres.h"

#include "libpq/libpq-be.h"
#include "utils/inet.h"
}

#include "core/login_attributes.hpp"

namespace connbudget::pg {

struct Login {
  LoginAttributes attributes;
  Oid role = InvalidOid;     // InvalidOid: no such role
  bool superuser = false;
  bool can_login = false;    // rolcanlogin
  int connection_limit = -1;  // rolconnlimit
  bool exempt = false;       // a superuser, and connbudget.exempt_superusers is on
  int kept_free = 0;         // backends PostgreSQL keeps from this login (version_compat)
  bool has_groups = false;   // attributes.member_of is filled in

  // Fills attributes.member_of with every role `role` is a member of, at any depth (what
  // pg_hba.conf's "+role" means). Catalog lookups: call it before taking the lock.
  void add_groups();
};

Login login_from_port(const Port& port);
Login login_from_values(const char* application_name, const char* role_name,
                        const char* database_name, const inet* client_addr);

// The address part of an inet or cidr value.
ClientAddress address_of(const inet* value);

}  // namespace connbudget::pg
