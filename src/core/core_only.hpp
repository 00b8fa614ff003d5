// Included last by every .cpp of src/core: the pure core must never see PostgreSQL's
// headers (it is also compiled without them for the unit tests, which proves it).
#pragma once

#ifdef POSTGRES_H
#error "src/core is pure C++: postgres.h must not be included here"
#endif
