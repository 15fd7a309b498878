/* Escrow with an arbiter and a timeout: the on-chain rule of the `escrow` app on Solana.
 *
 * The same rule as chenilles_app_escrow/rules.py and ArbiterEscrow.sol (read the Python
 * docstring). The adjudicator calls this program through CPI with the Chenilles app ABI
 * (chenilles_app.h); app data, 138 bytes, integers big-endian: status u8 | buyer u8 |
 * deadline u64 | amount u256 | release_hash 32 | refund_hash 32 | ruling 32.
 * Balances are u64 on Solana: an amount above 2^64 - 1 can never be covered (refused).
 */
#include "chenilles_app.h"

#define LEN 138
#define LOCKED 0
#define RELEASED 1
#define REFUNDED 2

static int well_formed(const u8 *d, u64 len) {
    return len == LEN && d[0] <= REFUNDED && d[1] <= 1;
}

/* May `mover` take escrow `a` to `b`'s status at `now`? */
static int allowed(const u8 *a, const u8 *b, u64 mover, i64 now) {
    u64 buyer = a[1];
    u64 deadline = be64(a + 2);
    u8 shown[32];
    SignerSeed ruling = {b + 106, 32};
    sol_sha256(&ruling, 1, shown);
    int late = now >= 0 && (u64)now > deadline;
    if (b[0] == RELEASED)
        return mover == buyer || (mem_eq(shown, a + 42, 32) && !late);
    return mover == 1 - buyer || mem_eq(shown, a + 74, 32) || (mover == buyer && late);
}

static u64 judge(const AppCall *c) {
    const u8 *a = c->from_data, *b = c->to_data;
    if (!well_formed(a, c->from_len) || !well_formed(b, c->to_len) || c->to_final ||
        c->n_assets == 0 || c->mover > 1)
        return APP_INVALID_TRANSITION;
    if (a[0] != LOCKED || !mem_eq(a + 1, b + 1, 105) || !app_others_unchanged(c))
        return APP_INVALID_TRANSITION;
    for (u64 i = 10; i < 34; i++)
        if (a[i] != 0)
            return APP_INVALID_TRANSITION; /* more than any u64 balance can cover */
    u64 amount = be64(a + 34);
    u64 buyer = a[1], seller = 1 - buyer;
    u64 from_buyer = app_balance(c->from_balances, 0, buyer);
    u64 from_seller = app_balance(c->from_balances, 0, seller);
    u64 to_buyer = app_balance(c->to_balances, 0, buyer);
    u64 to_seller = app_balance(c->to_balances, 0, seller);
    if (from_buyer < amount || (b[0] != RELEASED && b[0] != REFUNDED))
        return APP_INVALID_TRANSITION;
    if (!allowed(a, b, c->mover, c->now))
        return APP_INVALID_TRANSITION;
    u64 paid = b[0] == RELEASED ? amount : 0;
    if (to_buyer != from_buyer - paid || to_seller < from_seller || to_seller - from_seller != paid)
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
