// Counts the program's C++ heap allocations (a replaced global operator new),
// so that tests can assert that a loop allocates nothing.
#pragma once

namespace famq::testing {

// Allocations so far, or -1 where counting is off (sanitizer builds keep
// their own operator new).
long AllocationCount();

}  // namespace famq::testing
