// Builds LoginAttributes (core/login_attributes.hpp) from server data: the Port of a login
// or SQL values, the role's superuser flag and its role memberships (catalog caches).
extern "C" {
#include "postgres.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "access/htup_details.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/catcache.h"
#include "utils/syscache.h"
}

#include <cstring>
#include <new>

#include "pg/login_attributes.hpp"
#include "pg/settings.hpp"
#include "pg/version_compat.hpp"

namespace connbudget::pg {
namespace {

ClientAddress address_of_socket(const SockAddr& socket) {
  ClientAddress address;
  if (socket.addr.ss_family == AF_INET) {
    address.family = AddressFamily::IPv4;
    std::memcpy(address.bytes, &reinterpret_cast<const sockaddr_in*>(&socket.addr)->sin_addr, 4);
  } else if (socket.addr.ss_family == AF_INET6) {
    address.family = AddressFamily::IPv6;
    std::memcpy(address.bytes, &reinterpret_cast<const sockaddr_in6*>(&socket.addr)->sin6_addr, 16);
  }
  return address;
}

Login login_of(const char* application_name, const char* role_name, const char* database_name,
               ClientAddress address) {
  Login login;
  // Only what pg_stat_activity shows of it counts (and is matched, under our lock).
  login.attributes.application_name = counted_application_name(application_name ? application_name : "");
  login.attributes.role_name = role_name ? role_name : "";
  login.attributes.database_name = database_name ? database_name : "";
  login.attributes.client_addr = address;
  // The same catalog-cache lookup InitPostgres makes right after authentication, so it
  // costs a login next to nothing: it only warms the cache earlier.
  if (HeapTuple tuple = role_name ? SearchSysCache1(AUTHNAME, CStringGetDatum(role_name)) : nullptr;
      HeapTupleIsValid(tuple)) {
    const auto* form = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tuple));
    login.role = form->oid;
    login.superuser = form->rolsuper;
    login.can_login = form->rolcanlogin;
    login.connection_limit = form->rolconnlimit;
    login.exempt = exempt_superusers && form->rolsuper;
    ReleaseSysCache(tuple);
  }
  login.kept_free = kept_free_slots_from(login.role, login.superuser);
  return login;
}

}  // namespace

void Login::add_groups() {
  has_groups = true;
  if (!OidIsValid(role)) return;
  List* roles = list_make1_oid(role);
  for (int i = 0; i < list_length(roles); ++i) {
    CatCList* members = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(list_nth_oid(roles, i)));
    for (int j = 0; j < members->n_members; ++j) {
      const auto* form = reinterpret_cast<Form_pg_auth_members>(GETSTRUCT(&members->members[j]->tuple));
      roles = list_append_unique_oid(roles, form->roleid);
    }
    ReleaseSysCacheList(members);
  }
  auto* names = static_cast<std::string_view*>(palloc(sizeof(std::string_view) * list_length(roles)));
  int count = 0;
  for (int i = 1; i < list_length(roles); ++i)
    if (const char* name = GetUserNameFromId(list_nth_oid(roles, i), true))
      new (&names[count++]) std::string_view(name);
  attributes.member_of = {names, static_cast<std::size_t>(count)};
}

Login login_from_port(const Port& port) {
  return login_of(port.application_name, port.user_name, port.database_name,
                  address_of_socket(port.raddr));
}

Login login_from_values(const char* application_name, const char* role_name,
                        const char* database_name, const inet* client_addr) {
  // A real login's application_name is cleaned by the server before the hook sees it.
  return login_of(application_name ? clean_application_name(application_name) : nullptr, role_name, database_name,
                  client_addr ? address_of(client_addr) : ClientAddress{});
}

ClientAddress address_of(const inet* value) {
  ClientAddress address;
  address.family = ip_family(value) == PGSQL_AF_INET ? AddressFamily::IPv4 : AddressFamily::IPv6;
  std::memcpy(address.bytes, ip_addr(value), ClientAddress::byte_length(address.family));
  return address;
}

}  // namespace connbudget::pg
