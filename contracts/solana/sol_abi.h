/* Minimal Solana program ABI for clang -target bpf (SBPF v0), written for Chenilles.
 *
 * Only what our programs use: fixed-width types, the aligned input serialization of the
 * BPF loaders (v2/v3), the C CPI structures (same layout as the runtime's SolInstruction,
 * SolAccountMeta, SolAccountInfo, SolSignerSeed(s)) and the syscalls we import. Syscalls
 * are undefined external functions; scripts/build_solana_program.py links them through
 * chenilles_solana.sbf_linker (R_BPF_64_32 entries in .rel.dyn naming each symbol).
 *
 * Constraints of this toolchain (upstream BPF backend, not Solana's fork):
 *   - at most 5 arguments per function, no aggregates passed or returned by value;
 *   - at most 512 bytes of stack per function (use the heap region for large buffers);
 *   - no signed division; no writable globals (.data/.bss are rejected by the loader);
 *   - no libc: memcpy/memcmp/memset go through the sol_mem*_ syscalls below.
 */
#ifndef CHENILLES_SOL_ABI_H
#define CHENILLES_SOL_ABI_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;

#define NULL ((void *)0)

/* Virtual memory map of the SBPF VM. */
#define MM_HEAP_START 0x300000000UL
#define HEAP_SIZE (32 * 1024)

/* Account data may grow by up to this much per instruction; the loader reserves the
 * space after each account's data in the serialized input. */
#define MAX_PERMITTED_DATA_INCREASE (10 * 1024)
#define NON_DUP_MARKER 0xFF

typedef struct {
    u8 x[32];
} Pubkey;

/* Same layout as the runtime's C ABI SolAccountInfo (used directly for CPI). */
typedef struct {
    Pubkey *key;
    u64 *lamports;
    u64 data_len;
    u8 *data;
    Pubkey *owner;
    u64 rent_epoch;
    u8 is_signer;
    u8 is_writable;
    u8 executable;
} AccountInfo;

typedef struct {
    Pubkey *pubkey;
    u8 is_writable;
    u8 is_signer;
} AccountMeta;

typedef struct {
    Pubkey *program_id;
    AccountMeta *accounts;
    u64 account_len;
    u8 *data;
    u64 data_len;
} Instruction;

typedef struct {
    const u8 *addr;
    u64 len;
} SignerSeed; /* also the element type of sol_sha256's input vector */

typedef struct {
    const SignerSeed *addr;
    u64 len;
} SignerSeeds;

/* Clock sysvar as written by sol_get_clock_sysvar. */
typedef struct {
    u64 slot;
    i64 epoch_start_timestamp;
    u64 epoch;
    u64 leader_schedule_epoch;
    i64 unix_timestamp;
} Clock;

/* ---- syscalls (resolved by the loader by name) ---- */
extern void sol_log_(const char *msg, u64 len);
extern void sol_log_64_(u64, u64, u64, u64, u64);
/* "Program data: <base64>..." log line, one base64 field per element of `fields`. */
extern void sol_log_data(const SignerSeed *fields, u64 n);
extern u64 sol_sha256(const SignerSeed *vals, u64 n, u8 *out32);
extern u64 sol_create_program_address(const SignerSeed *seeds, u64 n, const Pubkey *program_id,
                                      Pubkey *out);
extern u64 sol_invoke_signed_c(const Instruction *ix, const AccountInfo *infos, u64 n_infos,
                               const SignerSeeds *signers, u64 n_signers);
extern u64 sol_get_clock_sysvar(Clock *out);
extern void sol_memcpy_(void *dst, const void *src, u64 n);
extern void sol_memset_(void *dst, u64 c, u64 n);
extern void sol_memcmp_(const void *a, const void *b, u64 n, int *result);

#define LOG(lit) sol_log_((lit), sizeof(lit) - 1)

static inline int mem_eq(const void *a, const void *b, u64 n) {
    int r = 0;
    sol_memcmp_(a, b, n, &r);
    return r == 0;
}

static inline int key_eq(const Pubkey *a, const Pubkey *b) {
    const u64 *x = (const u64 *)a->x, *y = (const u64 *)b->x;
    return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Unaligned little-endian reads (the VM allows unaligned access). */
static inline u16 rd16(const u8 *p) { return (u16)(p[0] | (p[1] << 8)); }
static inline u64 rd64(const u8 *p) { return *(const u64 *)(const void *)p; }

/* ---- input deserialization (aligned serialization of the BPF loader v2/v3) ---- */
typedef struct {
    AccountInfo *accounts;
    u64 n_accounts;
    const u8 *data;
    u64 data_len;
    const Pubkey *program_id;
} Input;

/* Fills `in`; account infos go to `infos` (capacity `cap`, extra accounts are ignored but
 * skipped correctly). Returns 0 on success. */
static u64 deserialize(u8 *input, AccountInfo *infos, u64 cap, Input *in) {
    u64 n = *(u64 *)input;
    u8 *p = input + 8;
    in->accounts = infos;
    in->n_accounts = n < cap ? n : cap;
    for (u64 i = 0; i < n; i++) {
        u8 dup = *p;
        p += 1;
        if (dup != NON_DUP_MARKER) {
            if (i < cap && dup < cap)
                infos[i] = infos[dup];
            p += 7;
            continue;
        }
        AccountInfo a;
        a.is_signer = p[0];
        a.is_writable = p[1];
        a.executable = p[2];
        p += 3 + 4; /* flags + original data length padding */
        a.key = (Pubkey *)p;
        p += 32;
        a.owner = (Pubkey *)p;
        p += 32;
        a.lamports = (u64 *)p;
        p += 8;
        a.data_len = *(u64 *)p;
        p += 8;
        a.data = p;
        p += a.data_len + MAX_PERMITTED_DATA_INCREASE;
        p = (u8 *)(((u64)p + 7) & ~7UL);
        a.rent_epoch = *(u64 *)p;
        p += 8;
        if (i < cap)
            infos[i] = a;
    }
    in->data_len = *(u64 *)p;
    p += 8;
    in->data = p;
    p += in->data_len;
    in->program_id = (const Pubkey *)p;
    return 0;
}

#endif
