// Where a login is admitted or refused: the ClientAuthentication hook.
#pragma once

namespace connbudget::pg {

// Installs the hook; from _PG_init when preloading.
void install_login_hook();

}  // namespace connbudget::pg
