/* The Chenilles app ABI for Solana app programs (include after sol_abi.h).
 *
 * On a forced move the adjudicator (chenilles_channel.c, PROGRESS) has checked everything
 * it can without knowing the app: the channel, version + 1, the mover's signature,
 * unchanged HTLCs and assets, per-asset conservation, the challenge timing. It then
 * invokes the channel's app program through CPI with no accounts and this instruction
 * data (integers little-endian):
 *
 *   abi u8 (= APP_ABI_VALID_TRANSITION) | mover u8 | n_assets u8 | from_final u8 |
 *   to_final u8 | pad 3 | now i64 (Clock unix time) |
 *   from balances: n_assets * (a u64 | b u64) | to balances: the same |
 *   from_len u16 | from app data | to_len u16 | to app data
 *
 * The app program returns 0 iff `to` is a valid move of participant `mover` from
 * `from` at `now`; any other value refuses it, and the runtime then fails the whole
 * transaction (nothing of the forced move is recorded). Conventionally an app returns
 * APP_INVALID_TRANSITION for a move its rule refuses and APP_BAD_CALL for data it cannot
 * parse. It is given no account, so it cannot touch the channel, only judge the move.
 */
#ifndef CHENILLES_APP_H
#define CHENILLES_APP_H

#include "sol_abi.h"

#define APP_ABI_VALID_TRANSITION 1
#define APP_CALL_HEADER 16
#define APP_MAX_ASSETS 4
#define APP_INVALID_TRANSITION 0x100
#define APP_BAD_CALL 0x101

typedef struct {
    u64 mover;
    u64 n_assets;
    u8 from_final;
    u8 to_final;
    i64 now;
    const u8 *from_balances; /* n_assets * 16 bytes */
    const u8 *to_balances;
    const u8 *from_data;
    u64 from_len;
    const u8 *to_data;
    u64 to_len;
} AppCall;

/* Balance of participant `who` (0 or 1) of asset `k` in a balances row. */
static inline u64 app_balance(const u8 *balances, u64 k, u64 who) {
    return rd64(balances + 16 * k + 8 * who);
}

/* Big-endian reads (app data encodings are big-endian, as Solidity's). */
static inline u64 be64(const u8 *p) {
    u64 v = 0;
    for (u64 i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Parses the call; 0 on success, APP_BAD_CALL otherwise. */
static u64 app_parse_call(const Input *in, AppCall *c) {
    const u8 *d = in->data;
    u64 len = in->data_len;
    if (len < APP_CALL_HEADER || d[0] != APP_ABI_VALID_TRANSITION)
        return APP_BAD_CALL;
    c->mover = d[1];
    c->n_assets = d[2];
    c->from_final = d[3];
    c->to_final = d[4];
    c->now = (i64)rd64(d + 8);
    if (c->n_assets > APP_MAX_ASSETS)
        return APP_BAD_CALL;
    u64 off = APP_CALL_HEADER;
    if (len < off + 32 * c->n_assets + 2)
        return APP_BAD_CALL;
    c->from_balances = d + off;
    c->to_balances = d + off + 16 * c->n_assets;
    off += 32 * c->n_assets;
    c->from_len = rd16(d + off);
    c->from_data = d + off + 2;
    off += 2 + c->from_len;
    if (len < off + 2)
        return APP_BAD_CALL;
    c->to_len = rd16(d + off);
    c->to_data = d + off + 2;
    off += 2 + c->to_len;
    if (off != len)
        return APP_BAD_CALL;
    return 0;
}

/* Are assets 1.. (all but the first) unchanged between the two balances rows? */
static int app_others_unchanged(const AppCall *c) {
    for (u64 k = 1; k < c->n_assets; k++)
        for (u64 who = 0; who < 2; who++)
            if (app_balance(c->from_balances, k, who) != app_balance(c->to_balances, k, who))
                return 0;
    return 1;
}

#endif
