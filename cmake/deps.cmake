# Third-party libraries as imported targets. Each is linked only by the folder DESIGN.md §3 allows.
pkg_check_modules(EXPAT REQUIRED IMPORTED_TARGET expat)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
pkg_check_modules(IDN2 REQUIRED IMPORTED_TARGET libidn2)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares)
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(JEMALLOC IMPORTED_TARGET jemalloc)
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka)

# wolfSSL: the build-tree copy with AES-NI and assembly unless told to use the system one.
if(FEDGATE_SYSTEM_WOLFSSL)
  pkg_check_modules(WOLFSSL REQUIRED IMPORTED_TARGET wolfssl)
else()
  set(ENV{PKG_CONFIG_PATH} "${FEDGATE_DEPS_DIR}/wolfssl/lib/pkgconfig:$ENV{PKG_CONFIG_PATH}")
  pkg_check_modules(WOLFSSL IMPORTED_TARGET wolfssl)
  if(NOT WOLFSSL_FOUND)
    message(FATAL_ERROR "wolfSSL not found in ${FEDGATE_DEPS_DIR}/wolfssl: run scripts/setup.sh "
                        "(or configure with -DFEDGATE_SYSTEM_WOLFSSL=ON after installing libwolfssl-dev)")
  endif()
endif()
message(STATUS "wolfSSL ${WOLFSSL_VERSION} from ${WOLFSSL_LIBDIR}")
