// Compiles Boost.JSON into the library: Debian ships its headers in
// libboost1.81-dev, and this is its documented header-only build.
#include <boost/json/src.hpp>
