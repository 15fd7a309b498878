/* Tic-tac-toe with stakes: the on-chain rule of the `tictactoe` Chenilles app on Solana.
 *
 * The same rule as chenilles_app_tictactoe/rules.py and TicTacToe.sol (read the Python
 * docstring for the game and why each state's balances are its outcome). The adjudicator
 * calls this program through CPI with the Chenilles app ABI (chenilles_app.h); app data,
 * 11 bytes: x u8 | moves u8 | board 9 x u8 (0 empty, 1 X, 2 O). Only asset 0 moves.
 */
#include "chenilles_app.h"

#define LEN 11

static const u8 LINES[24] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 3, 6, 1, 4, 7, 2, 5, 8, 0, 4, 8, 2, 4, 6};

static int well_formed(const u8 *d, u64 len) {
    if (len != LEN || d[0] > 1 || d[1] > 9)
        return 0;
    for (u64 i = 2; i < LEN; i++)
        if (d[i] > 2)
            return 0;
    return 1;
}

/* 0 if no line of three, else the owning mark (1 X, 2 O); lines in the Python order. */
static u8 line_mark(const u8 *d) {
    for (u64 k = 0; k < 24; k += 3) {
        u8 c = d[2 + LINES[k]];
        if (c != 0 && c == d[2 + LINES[k + 1]] && c == d[2 + LINES[k + 2]])
            return c;
    }
    return 0;
}

/* The pot's split for game `d` (see rules.split). */
static void split(const u8 *d, u64 pot, u64 *p0, u64 *p1) {
    u8 x = d[0], moves = d[1], mark = line_mark(d);
    u64 winner;
    if (mark != 0) {
        winner = mark == 1 ? x : 1 - x;
    } else if (moves == 0 || moves == 9) {
        *p1 = pot / 2;
        *p0 = pot - *p1;
        return;
    } else {
        winner = moves % 2 == 0 ? 1 - x : x; /* who moved last */
    }
    *p0 = winner == 0 ? pot : 0;
    *p1 = winner == 0 ? 0 : pot;
}

static u64 judge(const AppCall *c) {
    const u8 *a = c->from_data, *b = c->to_data;
    if (!well_formed(a, c->from_len) || !well_formed(b, c->to_len) || c->to_final ||
        c->n_assets == 0)
        return APP_INVALID_TRANSITION;
    u8 x = a[0], moves = a[1];
    if (line_mark(a) != 0 || moves == 9)
        return APP_INVALID_TRANSITION; /* the game is over */
    if (c->mover != (u64)(moves % 2 == 0 ? x : 1 - x))
        return APP_INVALID_TRANSITION; /* not the mover's turn */
    if (b[0] != x || b[1] != moves + 1)
        return APP_INVALID_TRANSITION;
    u8 mark = c->mover == x ? 1 : 2;
    u64 changed = 0, cell = 0;
    for (u64 i = 2; i < LEN; i++)
        if (a[i] != b[i]) {
            changed++;
            cell = i;
        }
    if (changed != 1 || a[cell] != 0 || b[cell] != mark)
        return APP_INVALID_TRANSITION;
    if (!app_others_unchanged(c))
        return APP_INVALID_TRANSITION;
    u64 f0 = app_balance(c->from_balances, 0, 0), f1 = app_balance(c->from_balances, 0, 1);
    u64 pot = f0 + f1;
    if (pot < f0)
        return APP_INVALID_TRANSITION; /* cannot happen for a conserving channel */
    u64 p0, p1;
    split(b, pot, &p0, &p1);
    if (app_balance(c->to_balances, 0, 0) != p0 || app_balance(c->to_balances, 0, 1) != p1)
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
