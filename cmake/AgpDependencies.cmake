# Every dependency comes from the platform's packages (apt on Debian/Ubuntu, Homebrew on macOS).
# Nothing is downloaded at build time.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

find_package(FlatBuffers CONFIG QUIET)
if(NOT FlatBuffers_FOUND)
  find_package(flatbuffers CONFIG REQUIRED)
endif()
find_program(AGP_FLATC NAMES flatc REQUIRED)

pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
find_package(nlohmann_json 3.9 CONFIG REQUIRED)

# Debian's libxxhash exports the x86 runtime dispatcher (AVX2/AVX-512 XXH3); use it when present.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_INCLUDES ${XXHASH_INCLUDE_DIRS})
set(CMAKE_REQUIRED_LIBRARIES PkgConfig::XXHASH)
check_cxx_source_compiles([=[
#include <xxh_x86dispatch.h>
int main() { char b[4] = {0}; return (int)XXH3_64bits_dispatch(b, 4); }
]=] AGP_HAVE_XXH_X86_DISPATCH)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_LIBRARIES)

if(AGP_BUILD_TOOLS OR AGP_BUILD_BENCH)
  find_package(CLI11 CONFIG REQUIRED)
endif()
if(AGP_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()
if(AGP_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()

# Standalone Asio is header-only: find its header.
find_path(ASIO_INCLUDE_DIR NAMES asio.hpp REQUIRED)
find_package(hwy CONFIG REQUIRED)
# HMAC-SHA256 and nonces for the transport's pre-shared-key handshake. Homebrew keeps OpenSSL
# outside the default search path: ask brew where, when it is there.
if(APPLE AND NOT OPENSSL_ROOT_DIR)
  find_program(AGP_BREW brew)
  if(AGP_BREW)
    execute_process(COMMAND ${AGP_BREW} --prefix openssl@3 OUTPUT_VARIABLE _agp_openssl
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_agp_openssl)
      set(OPENSSL_ROOT_DIR "${_agp_openssl}")
    endif()
  endif()
endif()
find_package(OpenSSL REQUIRED COMPONENTS Crypto)

# The fidelity harness's matrix products: Accelerate on macOS, OpenBLAS elsewhere.
if(AGP_BUILD_FIDELITY)
  if(APPLE)
    set(BLA_VENDOR Apple)
  else()
    set(BLA_VENDOR OpenBLAS)
  endif()
  find_package(BLAS REQUIRED)
  # The calibration's eigendecomposition (dsyevd); OpenBLAS and Accelerate carry LAPACK too.
  find_package(LAPACK REQUIRED)
endif()
