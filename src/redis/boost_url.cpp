// The compiled part of Boost.URL. Debian packages only its headers
// (libboost1.81-dev has no libboost_url), so it is built here, once.
#include <boost/url/src.hpp>
