/* A ledger channel funding a virtual channel: the hub's guarantee, the on-chain rule of the
 * `virtual` Chenilles app on Solana.
 *
 * The same rule as chenilles_app_virtual/rules.py (VirtualLedgerApp._valid) over the compact
 * 256-byte layout of chenilles_app_virtual/compact.py (read both docstrings for the
 * protocol and the layout); VirtualLedger.sol is the EVM twin over the 430-byte layout.
 * The adjudicator calls this program through CPI with the Chenilles app ABI
 * (chenilles_app.h) on a forced move; it is given no account, so V's signatures are
 * checked with the keccak256 and secp256k1_recover syscalls.
 *
 * A forced FUND is refused, as on EVM: a guarantee only ever enters a ledger in a state the
 * end signed (a cooperative FUND). The guarantee names V's id, not the ledger state it was
 * funded in, so a forced FUND would let the hub fund a V that already closed again and
 * show its old final state (the ledger would pay V's outcome twice). Here it is also what
 * binds the end's V key: the program is not told who the ledger's participants are, and
 * the end's Solana key is ed25519 anyway, so the end's signature on the FUND is the
 * binding; every forced move after that keeps the guarantee's core.
 */
#include "chenilles_app.h"

#define LEN 256
#define CORE 106
#define VSTATE 145
#define FUND_BEAT_AT 251
#define ACTIVE_AT 255

extern u64 sol_keccak256(const SignerSeed *vals, u64 n, u8 *out32);
extern u64 sol_secp256k1_recover(const u8 *hash32, u64 recovery_id, const u8 *sig64,
                                 u8 *out64);

/* bytes32("chenilles.virtual.state.v1"), the digest's domain tag (rules.STATE_TAG) */
static const u8 TAG[32] = "chenilles.virtual.state.v1";

typedef struct {
    const u8 *d;
    u64 hub, end, final, active;
    u64 deadline, grace, capacity, num, den, version, amount0, beat;
    u64 pay[2];  /* what the guarantee pays each ledger participant */
    u64 base[2]; /* the ledger's balances besides the guarantee */
} G;

static u64 be32(const u8 *p) { return ((u64)p[0] << 24) | ((u64)p[1] << 16) | ((u64)p[2] << 8) | p[3]; }

/* floor(a * b / c) if it fits u64 (c != 0); returns 0 on success. 128-bit by hand: the BPF
 * target has no 128-bit division. */
static __attribute__((noinline)) int mul_div(u64 a, u64 b, u64 c, u64 *out) {
    u64 a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
    u64 p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    u64 mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
    u64 lo = (p00 & 0xffffffff) | (mid << 32);
    u64 hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    if (hi >= c)
        return 1; /* the quotient would not fit u64 */
    /* restoring division of hi:lo by c, hi < c throughout */
    u64 q = 0;
    for (int i = 0; i < 64; i++) {
        u64 carry = hi >> 63;
        hi = (hi << 1) | (lo >> 63);
        lo <<= 1;
        q <<= 1;
        if (carry || hi >= c) {
            hi -= c;
            q |= 1;
        }
    }
    *out = q;
    return 0;
}

/* Parses a guarantee and derives its base from `balances` (asset 0); 0 on success. */
static __attribute__((noinline)) int parse(const u8 *d, u64 len, const u8 *balances, G *g) {
    if (len != LEN)
        return 1;
    g->d = d;
    g->hub = d[32];
    g->end = d[33];
    g->final = d[122];
    g->active = d[ACTIVE_AT];
    if (g->hub > 1 || g->end > 1 || g->final > 1 || g->active > 1)
        return 1;
    g->deadline = be32(d + 74);
    g->grace = be32(d + 78);
    g->capacity = be64(d + 82);
    g->num = be64(d + 90);
    g->den = be64(d + 98);
    g->version = be64(d + 106);
    g->amount0 = be64(d + 114);
    g->beat = be32(d + FUND_BEAT_AT);
    if (g->den == 0 || g->amount0 > g->capacity)
        return 1;
    u64 total, end_pay;
    u64 end_amount = g->end == 0 ? g->amount0 : g->capacity - g->amount0;
    if (mul_div(g->capacity, g->num, g->den, &total) ||
        mul_div(end_amount, g->num, g->den, &end_pay))
        return 1;
    g->pay[1 - g->hub] = end_pay;
    g->pay[g->hub] = total - end_pay; /* end_amount <= capacity, so end_pay <= total */
    for (u64 who = 0; who < 2; who++) {
        u64 b = app_balance(balances, 0, who);
        if (b < g->pay[who])
            return 1;
        g->base[who] = b - g->pay[who];
    }
    return 0;
}

static void be_word(u8 *out32, u64 v) {
    for (int i = 0; i < 32; i++)
        out32[i] = 0;
    for (int i = 0; i < 8; i++)
        out32[31 - i] = (u8)(v >> (8 * i));
}

/* Are both of V's keys the signers of the V state `g` holds? (rules.signed_by_both)
 * The digest is keccak256(abi.encode(TAG, vid, version, amount0, amount1, final)). */
static __attribute__((noinline)) int signed_by_both(const G *g) {
    u8 msg[192], digest[32];
    for (int k = 0; k < 32; k++) {
        msg[k] = TAG[k];
        msg[32 + k] = g->d[k];
    }
    be_word(msg + 64, g->version);
    be_word(msg + 96, g->amount0);
    be_word(msg + 128, g->capacity - g->amount0);
    be_word(msg + 160, g->final);
    SignerSeed parts[1] = {{msg, 192}};
    if (sol_keccak256(parts, 1, digest))
        return 0;
    for (u64 i = 0; i < 2; i++) {
        const u8 *s = g->d + 123 + 64 * i;
        u8 sig[64], pub[64], hash[32];
        for (int k = 0; k < 64; k++)
            sig[k] = s[k];
        u64 parity = sig[32] >> 7;
        sig[32] &= 0x7f;
        if (sol_secp256k1_recover(digest, parity, sig, pub))
            return 0;
        SignerSeed p[1] = {{pub, 64}};
        if (sol_keccak256(p, 1, hash))
            return 0;
        if (!mem_eq(hash + 12, g->d + 34 + 20 * i, 20))
            return 0;
    }
    return 1;
}

static __attribute__((noinline)) u64 judge(const AppCall *c) {
    if (c->n_assets == 0 || c->mover > 1 || !app_others_unchanged(c))
        return APP_INVALID_TRANSITION;
    G g0, g1;
    if (c->from_len == 0)
        return APP_INVALID_TRANSITION; /* FUND: never forced on Solana (see the top) */
    if (parse(c->from_data, c->from_len, c->from_balances, &g0))
        return APP_INVALID_TRANSITION;
    if (c->to_len == 0) { /* SETTLE: a final V state, or the hub's cancel of a pending one */
        for (u64 who = 0; who < 2; who++)
            if (app_balance(c->from_balances, 0, who) != app_balance(c->to_balances, 0, who))
                return APP_INVALID_TRANSITION;
        if ((g0.active && g0.final) || (!g0.active && c->mover == g0.hub))
            return 0;
        return APP_INVALID_TRANSITION;
    }
    if (parse(c->to_data, c->to_len, c->to_balances, &g1))
        return APP_INVALID_TRANSITION;
    if (!mem_eq(g0.d, g1.d, CORE) || g0.base[0] != g1.base[0] || g0.base[1] != g1.base[1])
        return APP_INVALID_TRANSITION;
    i64 now = c->now;
    i64 closes = (i64)(g0.deadline + g0.grace);
    if (g0.active != g1.active) { /* ACTIVATE */
        if (c->mover == g0.hub && g1.active && g0.beat == g1.beat &&
            mem_eq(g0.d + CORE, g1.d + CORE, VSTATE))
            return 0;
        return APP_INVALID_TRANSITION;
    }
    if (mem_eq(g0.d + CORE, g1.d + CORE, VSTATE)) { /* HEARTBEAT */
        if (c->mover == g0.hub && g1.beat == g0.beat + 1 && now < closes)
            return 0;
        return APP_INVALID_TRANSITION;
    }
    /* UPDATE: a V state both V keys signed (the amounts add up to capacity by layout) */
    if (!g0.active || g1.beat != g0.beat)
        return APP_INVALID_TRANSITION;
    int in_time;
    if (c->mover == g0.hub)
        in_time = now < closes && g1.version >= g0.version;
    else
        in_time = now < (i64)g0.deadline && g1.version > g0.version && !g0.final;
    if (!in_time || !signed_by_both(&g1))
        return APP_INVALID_TRANSITION;
    return 0;
}

u64 entrypoint(u8 *input) {
    AccountInfo none[1];
    Input in;
    AppCall call;
    deserialize(input, none, 1, &in);
    if (app_parse_call(&in, &call))
        return APP_BAD_CALL;
    return judge(&call);
}
