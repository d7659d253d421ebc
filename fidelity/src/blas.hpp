// The platform's BLAS (CBLAS interface): Accelerate on macOS, OpenBLAS (or any CBLAS) elsewhere.
#pragma once

#if defined(__APPLE__)
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif
