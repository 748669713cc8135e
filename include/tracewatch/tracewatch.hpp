// The whole public API of tracewatch in one include.

#pragma once

#include "tracewatch/error.hpp"
#include "tracewatch/layout.hpp"
#include "tracewatch/lease.hpp"
#include "tracewatch/logger.hpp"
#include "tracewatch/metrics.hpp"
#include "tracewatch/redis/connection.hpp"
#include "tracewatch/registry.hpp"
#include "tracewatch/supervisor.hpp"
#include "tracewatch/sweeper.hpp"
#include "tracewatch/trace_id.hpp"
#include "tracewatch/validation.hpp"
#include "tracewatch/watchdog.hpp"
