/* Smallest proof that the toolchain works end to end: syscalls (sol_log_, sol_sha256,
 * sol_log_64_) and a relocated address of read-only data. It logs a greeting, hashes the
 * instruction data and logs the first 8 bytes of the digest, and fails with custom error 42
 * when the instruction data is the single byte 0xff. */
#include "sol_abi.h"

static const char GREETING[] = "chenilles: hello from clang-built SBPF";

u64 entrypoint(u8 *input) {
    AccountInfo infos[2];
    Input in;
    deserialize(input, infos, 2, &in);
    sol_log_(GREETING, sizeof(GREETING) - 1);
    if (in.data_len == 1 && in.data[0] == 0xff)
        return 42;
    u8 digest[32];
    SignerSeed v = {in.data, in.data_len};
    sol_sha256(&v, 1, digest);
    sol_log_64_(rd64(digest), in.data_len, in.n_accounts, 0, 0);
    return 0;
}
