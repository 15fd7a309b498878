/* Chenilles channel adjudicator for Solana: 2-party channels over SOL and SPL tokens.
 *
 * One program holds the assets of many channels. Per channel:
 *   - a channel account, PDA ["channel", channel_id], owned by this program: the channel's
 *     record, and its lamports are the SOL vault (rent reserve + SOL deposits);
 *   - per SPL mint, a vault token account, PDA ["vault", channel account, mint], created by
 *     OPEN, owned by the SPL Token program, whose token authority is the channel account
 *     (so only this program, signing with the channel seeds, can move the tokens).
 * Preimages revealed on chain live in a global registry: one PDA per payment hash, seeds
 * ["preimage", sha256(preimage)].
 * The channel record keeps who paid OPEN's rent: once the channel is finished and paid
 * out, CLOSE_ACCOUNTS closes the vaults and the channel account and gives their rent back
 * to that payer. Preimage records are never closed (any channel may rely on a reveal).
 *
 * The channel id commits to everything OPEN stores:
 *   sha256("CHENILLES-SOL-CHANNEL" | program_id | A | B | challenge_duration u64 | nonce 32 |
 *          n_assets u8 | mint 32 * n_assets)          (mint = 32 zero bytes: SOL)
 *
 * Signed states are checked through the Ed25519 signature-verify precompile: the caller
 * puts one Ed25519 instruction with exactly two signatures (participant A then B) over the
 * same message, all offsets pointing into that instruction itself, and passes its index.
 * We read it back from the Instructions sysvar and parse the state from the signed bytes,
 * so the state appears once in the transaction. Message layout (all integers LE):
 *
 *   "CHENILLES-SOL-v1" (16) | program_id (32) | channel_id (32) | version u64 | final u8 |
 *   n_assets u8 | n_assets * (mint 32 | amount_a u64 | amount_b u64) | n_htlcs u8 |
 *   n_htlcs * (id u64 | payer u8 | asset u8 | amount u64 | payment_hash 32 | expiry i64)
 *
 * App channels (generalized state): OPEN may name an app program (appended to OPEN's data;
 * then the channel id hashes it after the mints, and the channel account carries an AppTail
 * after the Channel record). Their state messages end with the app data:
 *   ... HTLCs | app_len u16 | app data (at most MAX_APP_DATA bytes)
 * and the dispute gains forced moves (PROGRESS): once a registration's challenge period is
 * over, for one more period, a state following the registered one by one move, signed by
 * the mover alone, is recorded if the app program accepts it: we invoke it through CPI with
 * the app ABI (chenilles_app.h) and no account, so it can only judge, never touch, the
 * channel. Each forced move opens a period for the next one (status FORCED), during which
 * REGISTER also accepts a state both signed of at least the forced version. A non-final
 * app state registered by REGISTER concludes only after that extra period; a forced one at
 * the end of its period.
 *
 * Money rule, per asset: free balances + locked HTLCs == what was deposited. A state that
 * breaks it is refused (NOT_CONSERVING), with one exception: version 0 without HTLCs (the
 * funding agreement) may be registered when the channel is under- or over-funded, and then
 * every participant gets back exactly what it deposited of that asset. Deposits are made
 * once per (participant, asset), by the participant itself, while the channel is open.
 *
 * Events are logged with sol_log_data (one field: tag byte + payload, see EV_*), so any
 * client can follow a channel from transaction logs alone.
 * Error codes are the ERR_* below (InstructionError::Custom(code)); on any error the
 * runtime discards every change of the transaction, so no lamports and no tokens move.
 */
#include "sol_abi.h"

/* Each instruction and helper keeps its own stack frame (inlined, they would share one
 * frame and exceed the 512-byte limit). */
#define NOINLINE __attribute__((noinline))

/* ---- error codes (keep in sync with program_client.py) ---- */
#define ERR_BAD_INSTRUCTION 1
#define ERR_NOT_ENOUGH_ACCOUNTS 2
#define ERR_WRONG_CHANNEL_ACCOUNT 3
#define ERR_BAD_PDA 4
#define ERR_NOT_SIGNER 5
#define ERR_NOT_WRITABLE 6
#define ERR_BAD_SYSVAR 7
#define ERR_MISSING_SIGNATURE 8
#define ERR_BAD_SIGNATURE_IX 9
#define ERR_BAD_SIGNER 10
#define ERR_BAD_MESSAGE 11
#define ERR_WRONG_PROGRAM 12
#define ERR_WRONG_CHANNEL 13
#define ERR_BAD_ASSET 14
#define ERR_NOT_CONSERVING 15
#define ERR_STALE_VERSION 16
#define ERR_NOT_FINAL 17
#define ERR_BAD_STATUS 18
#define ERR_CHALLENGE_PERIOD_OVER 19
#define ERR_CHALLENGE_PERIOD_ACTIVE 20
#define ERR_NOT_CONCLUDED 21
#define ERR_ALREADY_WITHDRAWN 22
#define ERR_WRONG_PARTICIPANT_ACCOUNT 23
#define ERR_HTLC_UNRESOLVED 24
#define ERR_ALREADY_REVEALED 25
#define ERR_OVERFLOW 26
#define ERR_HTLCS_IN_FINAL 27
#define ERR_TOO_MANY_HTLCS 28
#define ERR_BAD_PARTICIPANTS 29
#define ERR_WRONG_SYSTEM_PROGRAM 30
#define ERR_WRONG_TOKEN_PROGRAM 31
#define ERR_BAD_VAULT 32
#define ERR_BAD_TOKEN_ACCOUNT 33
#define ERR_BAD_MINT 34
#define ERR_ALREADY_FUNDED 35
#define ERR_NOT_PARTICIPANT 36
#define ERR_NO_APP 37
#define ERR_WRONG_APP 38
#define ERR_STATE_IS_FINAL 39
#define ERR_NOT_WITHDRAWN 40
#define ERR_WRONG_RENT_PAYER 41

/* ---- instructions ---- */
#define IX_OPEN 0
#define IX_DEPOSIT 1
#define IX_COOP_CLOSE 2
#define IX_REGISTER 3
#define IX_CONCLUDE 4
#define IX_WITHDRAW 5
#define IX_REVEAL 6
#define IX_PROGRESS 7
#define IX_CLOSE_ACCOUNTS 8

/* ---- channel status ---- */
#define ST_OPEN 0
#define ST_DISPUTE 1
#define ST_CONCLUDED 2
#define ST_CLOSED 3
#define ST_FORCED 4 /* the registered state came from a forced move (app channels) */

/* ---- event tags (first byte of each sol_log_data field) ---- */
#define EV_OPENED 0    /* channel_id 32 */
#define EV_FUNDED 1    /* channel_id 32 | asset u8 | participant u8 | amount u64 */
#define EV_REGISTERED 2 /* channel_id 32 | version u64 | deadline i64 */
#define EV_CONCLUDED 3 /* channel_id 32 | version u64 | cooperative u8 */
#define EV_WITHDRAWN 4 /* channel_id 32 | asset u8 | participant u8 | amount u64 */
#define EV_REVEALED 5  /* payment_hash 32 | preimage 32 | unix time i64 | slot u64 */
#define EV_PROGRESSED 6 /* channel_id 32 | version u64 | deadline i64 | mover u8 | final u8 |
                           n_assets u8 | n_assets * (a u64 | b u64) | app_len u16 | app data */
#define EV_CLOSED 7 /* channel_id 32 | lamports given back to the rent payer u64 */

#define MAX_ASSETS 4
#define MAX_HTLCS 8
#define MAX_ACCOUNTS 20
#define MAX_APP_DATA 256
#define TOKEN_ACCOUNT_LEN 165

typedef struct {
    u64 id;
    u8 payer; /* 0 = A pays B, 1 = B pays A */
    u8 asset; /* index into the channel's assets */
    u8 pad[6];
    u64 amount;
    u8 payment_hash[32];
    i64 expiry; /* unix seconds (Clock sysvar) */
} Htlc;       /* 64 bytes */

typedef struct {
    u8 magic[8]; /* "CHNLSOL3" */
    u8 channel_id[32];
    Pubkey parts[2];
    u8 nonce[32];
    u64 challenge_duration;
    u8 status;
    u8 bump;
    u8 final_flag;
    u8 n_htlcs;
    u8 n_assets;
    u8 withdrawn; /* bit 2*asset + participant */
    u8 has_app;   /* an AppTail follows the record */
    u8 pad;
    u64 version;
    i64 deadline;
    Pubkey mints[MAX_ASSETS]; /* zero: SOL */
    u8 vault_bumps[MAX_ASSETS];
    u8 pad2[4];
    u64 deposits[MAX_ASSETS][2];
    u64 balances[MAX_ASSETS][2]; /* of the registered state */
    u64 payout[MAX_ASSETS][2];   /* after conclusion */
    Htlc htlcs[MAX_HTLCS];
    Pubkey rent_payer; /* paid OPEN's rent; CLOSE_ACCOUNTS gives it back to this key */
} Channel; /* 1040 bytes */

/* After the Channel record of an app channel: its app and the registered state's app data. */
typedef struct {
    Pubkey program; /* the app program, committed to by the channel id */
    u16 len;
    u8 pad[6];
    u8 data[MAX_APP_DATA];
} AppTail; /* 296 bytes */

typedef struct {
    u8 magic[8]; /* "PREIMAG1" */
    u8 payment_hash[32];
    u8 preimage[32];
    i64 revealed_at;
    u64 slot;
} PreimageRecord; /* 88 bytes */

_Static_assert(sizeof(Htlc) == 64, "Htlc layout");
_Static_assert(sizeof(Channel) == 1040, "Channel layout");
_Static_assert(sizeof(PreimageRecord) == 88, "PreimageRecord layout");
_Static_assert(sizeof(AppTail) == 296, "AppTail layout");

static const u8 CHANNEL_MAGIC[8] = "CHNLSOL3";
static const u8 PREIMAGE_MAGIC[8] = "PREIMAG1";
static const u8 MSG_MAGIC[16] = "CHENILLES-SOL-v1";
static const u8 CHANNEL_ID_DOMAIN[21] = "CHENILLES-SOL-CHANNEL";
static const u8 SEED_CHANNEL[7] = "channel";
static const u8 SEED_VAULT[5] = "vault";
static const u8 SEED_PREIMAGE[8] = "preimage";

static const Pubkey ED25519_PROGRAM_ID = {{
    0x03, 0x7d, 0x46, 0xd6, 0x7c, 0x93, 0xfb, 0xbe, 0x12, 0xf9, 0x42, 0x8f, 0x83, 0x8d, 0x40, 0xff,
    0x05, 0x70, 0x74, 0x49, 0x27, 0xf4, 0x8a, 0x64, 0xfc, 0xca, 0x70, 0x44, 0x80, 0x00, 0x00, 0x00}};
static const Pubkey INSTRUCTIONS_SYSVAR_ID = {{
    0x06, 0xa7, 0xd5, 0x17, 0x18, 0x7b, 0xd1, 0x66, 0x35, 0xda, 0xd4, 0x04, 0x55, 0xfd, 0xc2, 0xc0,
    0xc1, 0x24, 0xc6, 0x8f, 0x21, 0x56, 0x75, 0xa5, 0xdb, 0xba, 0xcb, 0x5f, 0x08, 0x00, 0x00, 0x00}};
/* TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA */
static const Pubkey TOKEN_PROGRAM_ID = {{
    0x06, 0xdd, 0xf6, 0xe1, 0xd7, 0x65, 0xa1, 0x93, 0xd9, 0xcb, 0xe1, 0x46, 0xce, 0xeb, 0x79, 0xac,
    0x1c, 0xb4, 0x85, 0xed, 0x5f, 0x5b, 0x37, 0x91, 0x3a, 0x8c, 0xf5, 0x85, 0x7e, 0xff, 0x00, 0xa9}};

#define MSG_HEADER_LEN (16 + 32 + 32 + 8 + 1 + 1)
#define MSG_ASSET_LEN (32 + 8 + 8)
#define MSG_HTLC_LEN (8 + 1 + 1 + 8 + 32 + 8)
#define ED25519_OFFSETS_START 2
#define ED25519_OFFSETS_LEN 14
#define BOTH_SIGNERS 2 /* load_signed_state: a state both signed (else one mover's move) */

/* A parsed, signature-checked state. Lives in the heap (too big for a 512-byte frame). */
typedef struct {
    u64 version;
    u8 final_flag;
    u8 n_htlcs;
    u8 pad[6];
    u64 balances[MAX_ASSETS][2];
    Htlc htlcs[MAX_HTLCS];
    const u8 *app_data; /* app channels: into the signed message (the Instructions sysvar) */
    u64 app_len;
} State;

#define APP_CALL_MAX (16 + 32 * MAX_ASSETS + 2 * (2 + MAX_APP_DATA))

typedef struct {
    AccountInfo infos[MAX_ACCOUNTS];
    AccountInfo cpi[3];
    State state;
    u8 scratch[256];
    u8 event[64 + 16 * MAX_ASSETS + 2 + MAX_APP_DATA];
    u8 app_call[APP_CALL_MAX];
} Heap;

static inline Heap *heap(void) { return (Heap *)MM_HEAP_START; }

static inline u64 now_unix(void) {
    Clock c;
    sol_get_clock_sysvar(&c);
    return (u64)c.unix_timestamp;
}

static int is_zero32(const u8 *p) {
    const u64 *q = (const u64 *)p;
    return (q[0] | q[1] | q[2] | q[3]) == 0;
}

static inline void wr64(u8 *p, u64 v) { *(u64 *)(void *)p = v; }

/* Logs heap()->event[0..len) as one "Program data:" field. */
static void emit(u64 len) {
    SignerSeed field = {heap()->event, len};
    sol_log_data(&field, 1);
}

/* Event with the common prefix tag | channel_id; returns where the payload starts. */
static u8 *event_start(u8 tag, const Channel *ch) {
    u8 *e = heap()->event;
    e[0] = tag;
    sol_memcpy_(e + 1, ch->channel_id, 32);
    return e + 33;
}

/* Checks that `acc` is an initialized channel account of this program. */
static u64 load_channel(const Input *in, const AccountInfo *acc, Channel **out) {
    if (!key_eq(acc->owner, in->program_id) || acc->data_len < sizeof(Channel) ||
        !mem_eq(acc->data, CHANNEL_MAGIC, 8))
        return ERR_WRONG_CHANNEL_ACCOUNT;
    if (!acc->is_writable)
        return ERR_NOT_WRITABLE;
    Channel *ch = (Channel *)acc->data;
    if (ch->has_app && acc->data_len < sizeof(Channel) + sizeof(AppTail))
        return ERR_WRONG_CHANNEL_ACCOUNT;
    *out = ch;
    return 0;
}

static inline AppTail *app_tail(Channel *ch) { return (AppTail *)(ch + 1); }

static u64 move_lamports(AccountInfo *from, AccountInfo *to, u64 amount) {
    if (*from->lamports < amount)
        return ERR_OVERFLOW;
    if (*to->lamports + amount < *to->lamports)
        return ERR_OVERFLOW;
    *from->lamports -= amount;
    *to->lamports += amount;
    return 0;
}

static u64 check_system_program(const AccountInfo *a) {
    return is_zero32(a->key->x) ? 0 : ERR_WRONG_SYSTEM_PROGRAM;
}

static u64 check_token_program(const AccountInfo *a) {
    return key_eq(a->key, &TOKEN_PROGRAM_ID) && a->executable ? 0 : ERR_WRONG_TOKEN_PROGRAM;
}

/* CPI: system_program::create_account(payer -> new_acc, owned by `owner`), signed by the
 * new account's PDA seeds. */
typedef struct {
    u64 lamports;
    u64 space;
    const Pubkey *owner;
    const SignerSeeds *signer;
} CreateArgs;

NOINLINE static u64 create_pda_account(AccountInfo *payer, AccountInfo *new_acc, AccountInfo *system,
                              const CreateArgs *args) {
    u8 *d = heap()->scratch;
    AccountMeta metas[2] = {{payer->key, 1, 1}, {new_acc->key, 1, 1}};
    *(u32 *)(d + 0) = 0; /* CreateAccount */
    wr64(d + 4, args->lamports);
    wr64(d + 12, args->space);
    sol_memcpy_(d + 20, args->owner, 32);
    Instruction ix = {system->key, metas, 2, d, 52};
    AccountInfo *infos = heap()->cpi;
    infos[0] = *payer;
    infos[1] = *new_acc;
    u64 err = sol_invoke_signed_c(&ix, infos, 2, args->signer, 1);
    /* the runtime updated the serialized length (8 bytes before the data); our copy of the
     * account info must follow, or a later CPI would ask to shrink the account back */
    new_acc->data_len = *(u64 *)(new_acc->data - 8);
    return err;
}

/* The channel account's signer seeds ["channel", channel_id, bump] (the vaults' authority).
 * `seeds` must have room for 3 entries and outlive the CPI. */
static void channel_seeds(const Channel *ch, SignerSeed *seeds) {
    seeds[0].addr = SEED_CHANNEL;
    seeds[0].len = sizeof(SEED_CHANNEL);
    seeds[1].addr = ch->channel_id;
    seeds[1].len = 32;
    seeds[2].addr = &ch->bump;
    seeds[2].len = 1;
}

/* Checks that `vault` is the vault of asset `k`: the PDA ["vault", channel, mint, bump], a
 * token account of the SPL Token program for that mint, whose authority is the channel. */
NOINLINE static u64 check_vault(const Input *in, const AccountInfo *chan, const Channel *ch, u64 k,
                       const AccountInfo *vault) {
    SignerSeed seeds[4] = {{SEED_VAULT, sizeof(SEED_VAULT)},
                           {chan->key->x, 32},
                           {ch->mints[k].x, 32},
                           {&ch->vault_bumps[k], 1}};
    Pubkey expected;
    if (sol_create_program_address(seeds, 4, in->program_id, &expected) != 0 ||
        !key_eq(&expected, vault->key))
        return ERR_BAD_VAULT;
    if (!key_eq(vault->owner, &TOKEN_PROGRAM_ID) || vault->data_len != TOKEN_ACCOUNT_LEN ||
        !key_eq((const Pubkey *)vault->data, &ch->mints[k]) ||
        !key_eq((const Pubkey *)(vault->data + 32), chan->key))
        return ERR_BAD_VAULT;
    if (!vault->is_writable)
        return ERR_NOT_WRITABLE;
    return 0;
}

/* Checks that `acc` is an initialized token account of mint `k` owned by participant `who`. */
NOINLINE static u64 check_receiver(const Channel *ch, u64 k, u64 who, const AccountInfo *acc) {
    if (!key_eq(acc->owner, &TOKEN_PROGRAM_ID) || acc->data_len != TOKEN_ACCOUNT_LEN ||
        !key_eq((const Pubkey *)acc->data, &ch->mints[k]) ||
        !key_eq((const Pubkey *)(acc->data + 32), &ch->parts[who]) || acc->data[108] != 1)
        return ERR_BAD_TOKEN_ACCOUNT;
    if (!acc->is_writable)
        return ERR_NOT_WRITABLE;
    return 0;
}

/* CPI spl_token::transfer(from -> to, amount) by `authority`, signed with `signer` (or by
 * the transaction's own signature when `signer` is NULL). */
typedef struct {
    AccountInfo *token;
    AccountInfo *from;
    AccountInfo *to;
    AccountInfo *authority;
    const SignerSeeds *signer;
    u64 amount;
} TokenTransfer;

NOINLINE static u64 token_transfer(const TokenTransfer *t) {
    u8 *d = heap()->scratch;
    d[0] = 3; /* Transfer */
    wr64(d + 1, t->amount);
    AccountMeta metas[3] = {{t->from->key, 1, 0}, {t->to->key, 1, 0}, {t->authority->key, 0, 1}};
    Instruction ix = {t->token->key, metas, 3, d, 9};
    AccountInfo *infos = heap()->cpi;
    infos[0] = *t->from;
    infos[1] = *t->to;
    infos[2] = *t->authority;
    return sol_invoke_signed_c(&ix, infos, 3, t->signer, t->signer ? 1 : 0);
}

/* Pays `amount` of asset `k` to participant `who` out of the channel. SOL: lamports from the
 * channel account to `dest` (must be the participant's own account). Token: from `vault`
 * to `dest` (the participant's token account of that mint), signed by the channel PDA. */
typedef struct {
    AccountInfo *chan;
    AccountInfo *dest;
    AccountInfo *vault;
    AccountInfo *token;
    u64 asset;
    u64 who;
    u64 amount;
} Payment;

NOINLINE static u64 pay(const Input *in, const Channel *ch, const Payment *p) {
    u64 k = p->asset, who = p->who;
    if (is_zero32(ch->mints[k].x)) {
        if (!key_eq(p->dest->key, &ch->parts[who]))
            return ERR_WRONG_PARTICIPANT_ACCOUNT;
        return move_lamports(p->chan, p->dest, p->amount);
    }
    if (p->amount == 0)
        return 0;
    u64 err;
    if ((err = check_token_program(p->token)) || (err = check_vault(in, p->chan, ch, k, p->vault)) ||
        (err = check_receiver(ch, k, who, p->dest)))
        return err;
    SignerSeed seeds[3];
    channel_seeds(ch, seeds);
    SignerSeeds signer = {seeds, 3};
    TokenTransfer t = {p->token, p->vault, p->dest, p->chan, &signer, p->amount};
    return token_transfer(&t);
}

/* OPEN, per SPL asset k: checks the mint, creates the vault PDA ["vault", channel, mint]
 * and initializes it as a token account of that mint whose authority is the channel.
 * `mv` points at the mint's and the vault's account infos. */
NOINLINE static u64 open_vault(const Input *in, AccountInfo *chan, u64 k, AccountInfo *mv,
                               u8 vault_bump) {
    Channel *ch = (Channel *)chan->data;
    AccountInfo *payer = &in->accounts[0], *system = &in->accounts[2];
    AccountInfo *token = &in->accounts[3], *mint = &mv[0], *vault = &mv[1];
    u64 vault_lamports = rd64(in->data + 1 + 113);
    if (!key_eq(mint->key, &ch->mints[k]) || !key_eq(mint->owner, &TOKEN_PROGRAM_ID))
        return ERR_BAD_MINT;
    ch->vault_bumps[k] = vault_bump;
    SignerSeed vseeds[4] = {{SEED_VAULT, sizeof(SEED_VAULT)},
                            {chan->key->x, 32},
                            {ch->mints[k].x, 32},
                            {&ch->vault_bumps[k], 1}};
    Pubkey expected;
    if (sol_create_program_address(vseeds, 4, in->program_id, &expected) != 0 ||
        !key_eq(&expected, vault->key))
        return ERR_BAD_VAULT;
    SignerSeeds vsigner = {vseeds, 4};
    CreateArgs vargs = {vault_lamports, TOKEN_ACCOUNT_LEN, &TOKEN_PROGRAM_ID, &vsigner};
    u64 err = create_pda_account(payer, vault, system, &vargs);
    if (err)
        return err;
    /* spl_token::initialize_account3(vault, mint, owner = channel account) */
    u8 *s = heap()->scratch;
    s[0] = 18;
    sol_memcpy_(s + 1, chan->key, 32);
    AccountMeta metas[2] = {{vault->key, 1, 0}, {mint->key, 0, 0}};
    Instruction ix = {token->key, metas, 2, s, 33};
    AccountInfo *infos = heap()->cpi;
    infos[0] = *vault;
    infos[1] = *mint;
    return sol_invoke_signed_c(&ix, infos, 2, NULL, 0);
}

/* ---- OPEN: [0][A 32][B 32][challenge_duration u64][nonce 32][bump u8][lamports u64]
 *           [vault_lamports u64][n_assets u8][mint 32 * n][vault bump u8 * n]
 *           [app program 32, app channels only]
 * accounts: payer (signer, writable), channel PDA (writable), system program, token program,
 *           then for each SPL asset in order: mint, vault PDA (writable).
 * Creates the channel account (with an AppTail for an app channel) and one vault token
 * account per mint. */
#define OPEN_FIXED (1 + 32 + 32 + 8 + 32 + 1 + 8 + 8 + 1)
NOINLINE static u64 ix_open(const Input *in) {
    if (in->data_len < OPEN_FIXED)
        return ERR_BAD_INSTRUCTION;
    const u8 *d = in->data + 1;
    u64 n_assets = d[OPEN_FIXED - 2];
    if (n_assets == 0 || n_assets > MAX_ASSETS)
        return ERR_BAD_ASSET;
    u64 plain_len = OPEN_FIXED + 33 * n_assets;
    if (in->data_len != plain_len && in->data_len != plain_len + 32)
        return ERR_BAD_INSTRUCTION;
    const u8 *mints = d + OPEN_FIXED - 1, *vault_bumps = mints + 32 * n_assets;
    const u8 *app = in->data_len == plain_len ? NULL : in->data + plain_len;
    if (app != NULL && is_zero32(app))
        return ERR_NO_APP;
    if (in->n_accounts < 4)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *payer = &in->accounts[0], *chan = &in->accounts[1];
    AccountInfo *system = &in->accounts[2], *token = &in->accounts[3];
    u64 err = check_system_program(system);
    if (err)
        return err;
    if (!payer->is_signer)
        return ERR_NOT_SIGNER;
    if (key_eq((const Pubkey *)d, (const Pubkey *)(d + 32)))
        return ERR_BAD_PARTICIPANTS;
    u64 n_tokens = 0;
    for (u64 k = 0; k < n_assets; k++) {
        for (u64 j = 0; j < k; j++)
            if (key_eq((const Pubkey *)(mints + 32 * k), (const Pubkey *)(mints + 32 * j)))
                return ERR_BAD_ASSET;
        if (!is_zero32(mints + 32 * k))
            n_tokens++;
    }
    if (n_tokens && (err = check_token_program(token)))
        return err;
    if (in->n_accounts < 4 + 2 * n_tokens)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    u8 bump = d[104];
    u64 lamports = rd64(d + 105);

    u8 channel_id[32];
    SignerSeed parts[5] = {
        {CHANNEL_ID_DOMAIN, sizeof(CHANNEL_ID_DOMAIN)},
        {in->program_id->x, 32},
        {d, 104}, /* A | B | challenge_duration | nonce */
        {d + 121, 1 + 32 * n_assets}, /* n_assets | mints */
        {app, 32}, /* app channels: the app program */
    };
    sol_sha256(parts, app != NULL ? 5 : 4, channel_id);

    SignerSeed seeds[3] = {{SEED_CHANNEL, sizeof(SEED_CHANNEL)}, {channel_id, 32}, {&bump, 1}};
    Pubkey expected;
    if (sol_create_program_address(seeds, 3, in->program_id, &expected) != 0 ||
        !key_eq(&expected, chan->key))
        return ERR_BAD_PDA;
    if (key_eq(chan->owner, in->program_id))
        return ERR_WRONG_CHANNEL_ACCOUNT; /* already initialized */
    SignerSeeds signer = {seeds, 3};
    u64 size = sizeof(Channel) + (app != NULL ? sizeof(AppTail) : 0);
    CreateArgs args = {lamports, size, in->program_id, &signer};
    if ((err = create_pda_account(payer, chan, system, &args)))
        return err;
    Channel *ch = (Channel *)chan->data;
    if (app != NULL) {
        ch->has_app = 1;
        sol_memcpy_(app_tail(ch)->program.x, app, 32);
    }
    sol_memcpy_(ch->magic, CHANNEL_MAGIC, 8);
    sol_memcpy_(ch->channel_id, channel_id, 32);
    sol_memcpy_(ch->parts, d, 64);
    ch->challenge_duration = rd64(d + 64);
    sol_memcpy_(ch->nonce, d + 72, 32);
    ch->bump = bump;
    ch->status = ST_OPEN;
    ch->n_assets = (u8)n_assets;
    sol_memcpy_(ch->mints, mints, 32 * n_assets);
    sol_memcpy_(ch->rent_payer.x, payer->key, 32);

    u64 next = 4;
    for (u64 k = 0; k < n_assets; k++) {
        if (is_zero32(mints + 32 * k))
            continue;
        if ((err = open_vault(in, chan, k, &in->accounts[next], vault_bumps[k])))
            return err;
        next += 2;
    }
    event_start(EV_OPENED, ch);
    emit(33);
    return 0;
}

/* ---- DEPOSIT: [1][participant u8][asset u8][amount u64]
 * accounts: funder = the participant (signer, writable), channel (writable),
 *           system program (SOL) or token program (SPL), then for SPL: the funder's token
 *           account (writable), the asset's vault (writable).
 * Each participant deposits each asset at most once (a retried deposit cannot double). */
NOINLINE static u64 ix_deposit(const Input *in) {
    if (in->data_len != 1 + 1 + 1 + 8)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 3)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *funder = &in->accounts[0], *chan = &in->accounts[1];
    AccountInfo *prog = &in->accounts[2];
    Channel *ch;
    u64 err = load_channel(in, chan, &ch);
    if (err)
        return err;
    u8 who = in->data[1], k = in->data[2];
    u64 amount = rd64(in->data + 3);
    if (who > 1 || amount == 0)
        return ERR_BAD_INSTRUCTION;
    if (k >= ch->n_assets)
        return ERR_BAD_ASSET;
    if (ch->status != ST_OPEN)
        return ERR_BAD_STATUS;
    if (!funder->is_signer)
        return ERR_NOT_SIGNER;
    if (!key_eq(funder->key, &ch->parts[who]))
        return ERR_NOT_PARTICIPANT;
    if (ch->deposits[k][who] != 0)
        return ERR_ALREADY_FUNDED;
    if (is_zero32(ch->mints[k].x)) {
        if ((err = check_system_program(prog)))
            return err;
        /* CPI system_program::transfer(funder -> channel, amount) */
        u8 *d = heap()->scratch;
        *(u32 *)d = 2; /* Transfer */
        wr64(d + 4, amount);
        AccountMeta metas[2] = {{funder->key, 1, 1}, {chan->key, 1, 0}};
        Instruction ix = {prog->key, metas, 2, d, 12};
        AccountInfo *infos = heap()->cpi;
        infos[0] = *funder;
        infos[1] = *chan;
        if ((err = sol_invoke_signed_c(&ix, infos, 2, NULL, 0)))
            return err;
    } else {
        if (in->n_accounts < 5)
            return ERR_NOT_ENOUGH_ACCOUNTS;
        AccountInfo *source = &in->accounts[3], *vault = &in->accounts[4];
        if ((err = check_token_program(prog)) || (err = check_vault(in, chan, ch, k, vault)))
            return err;
        /* the token program checks the source's mint and that the funder may spend it */
        TokenTransfer t = {prog, source, vault, funder, NULL, amount};
        if ((err = token_transfer(&t)))
            return err;
    }
    ch->deposits[k][who] = amount;
    u8 *e = event_start(EV_FUNDED, ch);
    e[0] = k;
    e[1] = who;
    wr64(e + 2, amount);
    emit(33 + 10);
    return 0;
}

/* Reads the Ed25519 instruction at `ed_index` from the Instructions sysvar, checks that it
 * carries exactly two self-contained signatures over one message by participants A and B
 * (`signer` == BOTH_SIGNERS), or one by participant `signer` (a forced move), then parses
 * and validates the message into heap()->state. */
NOINLINE static u64 load_signed_state(const Input *in, const AccountInfo *sysvar, u8 ed_index,
                                      const Channel *ch, u64 signer) {
    if (!key_eq(sysvar->key, &INSTRUCTIONS_SYSVAR_ID))
        return ERR_BAD_SYSVAR;
    const u8 *sv = sysvar->data;
    u64 sv_len = sysvar->data_len;
    if (sv_len < 2)
        return ERR_BAD_SYSVAR;
    u16 n_ix = rd16(sv);
    if (ed_index >= n_ix)
        return ERR_MISSING_SIGNATURE;
    u64 off = rd16(sv + 2 + 2 * (u64)ed_index);
    if (off + 2 > sv_len)
        return ERR_BAD_SYSVAR;
    u64 n_metas = rd16(sv + off);
    off += 2 + 33 * n_metas;
    if (off + 34 > sv_len)
        return ERR_BAD_SYSVAR;
    if (!key_eq((const Pubkey *)(sv + off), &ED25519_PROGRAM_ID))
        return ERR_MISSING_SIGNATURE;
    u64 ed_len = rd16(sv + off + 32);
    const u8 *ed = sv + off + 34;
    if (off + 34 + ed_len > sv_len)
        return ERR_BAD_SYSVAR;
    u64 n_sigs = signer == BOTH_SIGNERS ? 2 : 1;
    if (ed_len < ED25519_OFFSETS_START + n_sigs * ED25519_OFFSETS_LEN || ed[0] != n_sigs)
        return ERR_BAD_SIGNATURE_IX;

    const u8 *msg = NULL;
    u64 msg_len = 0;
    for (u64 i = 0; i < n_sigs; i++) {
        const u8 *o = ed + ED25519_OFFSETS_START + ED25519_OFFSETS_LEN * i;
        u64 pk_off = rd16(o + 4), m_off = rd16(o + 8), m_len = rd16(o + 10);
        /* signature, public key and message must all live in the Ed25519 instruction */
        if (rd16(o + 2) != 0xFFFF || rd16(o + 6) != 0xFFFF || rd16(o + 12) != 0xFFFF)
            return ERR_BAD_SIGNATURE_IX;
        if (pk_off + 32 > ed_len || m_off + m_len > ed_len)
            return ERR_BAD_SIGNATURE_IX;
        if (!key_eq((const Pubkey *)(ed + pk_off), &ch->parts[n_sigs == 2 ? i : signer]))
            return ERR_BAD_SIGNER;
        if (i == 0) {
            msg = ed + m_off;
            msg_len = m_len;
        } else if (m_len != msg_len || !mem_eq(msg, ed + m_off, m_len)) {
            return ERR_BAD_SIGNATURE_IX;
        }
    }

    /* ---- parse the state message ---- */
    if (msg_len < MSG_HEADER_LEN + 1 || !mem_eq(msg, MSG_MAGIC, 16))
        return ERR_BAD_MESSAGE;
    if (!mem_eq(msg + 16, in->program_id, 32))
        return ERR_WRONG_PROGRAM;
    if (!mem_eq(msg + 48, ch->channel_id, 32))
        return ERR_WRONG_CHANNEL;
    State *st = &heap()->state;
    st->version = rd64(msg + 80);
    st->final_flag = msg[88];
    if (st->final_flag > 1)
        return ERR_BAD_MESSAGE;
    u64 n_assets = msg[89];
    if (n_assets != ch->n_assets)
        return ERR_BAD_ASSET;
    if (msg_len < MSG_HEADER_LEN + MSG_ASSET_LEN * n_assets + 1)
        return ERR_BAD_MESSAGE;
    u64 total[MAX_ASSETS];
    const u8 *a = msg + MSG_HEADER_LEN;
    for (u64 k = 0; k < n_assets; k++, a += MSG_ASSET_LEN) {
        if (!key_eq((const Pubkey *)a, &ch->mints[k]))
            return ERR_BAD_ASSET;
        st->balances[k][0] = rd64(a + 32);
        st->balances[k][1] = rd64(a + 40);
        total[k] = st->balances[k][0] + st->balances[k][1];
        if (total[k] < st->balances[k][0])
            return ERR_OVERFLOW;
    }
    u64 n_htlcs = a[0];
    if (n_htlcs > MAX_HTLCS)
        return ERR_TOO_MANY_HTLCS;
    u64 body_len = MSG_HEADER_LEN + MSG_ASSET_LEN * n_assets + 1 + MSG_HTLC_LEN * n_htlcs;
    st->app_data = NULL;
    st->app_len = 0;
    if (ch->has_app) {
        if (msg_len < body_len + 2)
            return ERR_BAD_MESSAGE;
        st->app_len = rd16(msg + body_len);
        st->app_data = msg + body_len + 2;
        if (st->app_len > MAX_APP_DATA)
            return ERR_BAD_MESSAGE;
        body_len += 2 + st->app_len;
    }
    if (msg_len != body_len)
        return ERR_BAD_MESSAGE;
    st->n_htlcs = (u8)n_htlcs;
    const u8 *h = a + 1;
    for (u64 j = 0; j < n_htlcs; j++, h += MSG_HTLC_LEN) {
        Htlc *x = &st->htlcs[j];
        x->id = rd64(h);
        x->payer = h[8];
        x->asset = h[9];
        x->amount = rd64(h + 10);
        sol_memcpy_(x->payment_hash, h + 18, 32);
        x->expiry = (i64)rd64(h + 50);
        if (x->payer > 1)
            return ERR_BAD_MESSAGE;
        if (x->asset >= n_assets)
            return ERR_BAD_ASSET;
        if (total[x->asset] + x->amount < total[x->asset])
            return ERR_OVERFLOW;
        total[x->asset] += x->amount;
    }
    for (u64 k = 0; k < n_assets; k++) {
        u64 deposited = ch->deposits[k][0] + ch->deposits[k][1];
        if (deposited < ch->deposits[k][0])
            return ERR_OVERFLOW;
        /* version 0 without HTLCs is the funding agreement: it may disagree with what was
         * really deposited (someone never funded), and then settles as a refund */
        if (total[k] != deposited && (st->version != 0 || n_htlcs != 0))
            return ERR_NOT_CONSERVING;
    }
    return 0;
}

/* Free balances + HTLCs of asset k in the registered state == deposits of asset k? */
static int conserves(const Channel *ch, u64 k) {
    u64 t = ch->balances[k][0] + ch->balances[k][1];
    for (u64 j = 0; j < ch->n_htlcs; j++)
        if (ch->htlcs[j].asset == k)
            t += ch->htlcs[j].amount;
    return t == ch->deposits[k][0] + ch->deposits[k][1];
}

static void record_state(Channel *ch, const State *st) {
    ch->version = st->version;
    ch->final_flag = st->final_flag;
    sol_memcpy_(ch->balances, st->balances, sizeof(st->balances));
    ch->n_htlcs = st->n_htlcs;
    sol_memcpy_(ch->htlcs, st->htlcs, sizeof(Htlc) * st->n_htlcs);
    if (ch->has_app) {
        AppTail *t = app_tail(ch);
        t->len = (u16)st->app_len;
        sol_memcpy_(t->data, st->app_data, st->app_len);
    }
}

static void emit_concluded(const Channel *ch, u8 cooperative) {
    u8 *e = event_start(EV_CONCLUDED, ch);
    wr64(e, ch->version);
    e[8] = cooperative;
    emit(33 + 9);
}

/* ---- COOP_CLOSE: [2][ed25519 instruction index u8]
 * accounts: channel (writable), A (writable), B (writable), Instructions sysvar, then if the
 * channel holds SPL assets: token program, and per SPL asset in order: vault (writable),
 * A's token account (writable), B's token account (writable). Pays out every asset. */
NOINLINE static u64 ix_coop_close(const Input *in) {
    if (in->data_len != 2)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 4)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *acc = in->accounts;
    Channel *ch;
    u64 err = load_channel(in, &acc[0], &ch);
    if (err)
        return err;
    if (ch->status != ST_OPEN && ch->status != ST_DISPUTE && ch->status != ST_FORCED)
        return ERR_BAD_STATUS;
    if ((err = load_signed_state(in, &acc[3], in->data[1], ch, BOTH_SIGNERS)))
        return err;
    State *st = &heap()->state;
    if (!st->final_flag)
        return ERR_NOT_FINAL;
    if (st->n_htlcs)
        return ERR_HTLCS_IN_FINAL;
    if (ch->status != ST_OPEN && st->version < ch->version)
        return ERR_STALE_VERSION;
    record_state(ch, st);
    /* Two passes: token CPIs first, SOL last. The runtime checks, at each CPI, that the
     * lamports of this instruction's accounts still add up as it last saw them; a SOL
     * payout made before a CPI would trip that check. */
    for (u64 pass = 0; pass < 2; pass++) {
        u64 next = 5;
        for (u64 k = 0; k < ch->n_assets; k++) {
            int native = is_zero32(ch->mints[k].x);
            if (!native && in->n_accounts < next + 3)
                return ERR_NOT_ENOUGH_ACCOUNTS;
            int ok = conserves(ch, k);
            for (u64 i = 0; i < 2 && native == (int)pass; i++) {
                u64 amount = ok ? ch->balances[k][i] : ch->deposits[k][i];
                ch->payout[k][i] = amount;
                Payment p = {&acc[0], native ? &acc[1 + i] : &acc[next + 1 + i], &acc[next],
                             &acc[4], k, i, amount};
                if ((err = pay(in, ch, &p)))
                    return err;
            }
            if (!native)
                next += 3;
        }
    }
    ch->withdrawn = 0xFF;
    ch->status = ST_CLOSED;
    emit_concluded(ch, 1);
    return 0;
}

/* ---- REGISTER: [3][ed25519 instruction index u8]
 * accounts: channel (writable), Instructions sysvar.
 * Registers a state and starts the challenge period, or, during the period, replaces the
 * registered state by a newer one. A final state ends the period at once. After a forced
 * move (status FORCED), while its period runs, a state both signed of at least the forced
 * version replaces it (a move forced on a stale base is answered with what both signed)
 * and starts a new challenge period. */
NOINLINE static u64 ix_register(const Input *in) {
    if (in->data_len != 2)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 2)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Channel *ch;
    u64 err = load_channel(in, &in->accounts[0], &ch);
    if (err)
        return err;
    if (ch->status != ST_OPEN && ch->status != ST_DISPUTE && ch->status != ST_FORCED)
        return ERR_BAD_STATUS;
    if ((err = load_signed_state(in, &in->accounts[1], in->data[1], ch, BOTH_SIGNERS)))
        return err;
    State *st = &heap()->state;
    u64 now = now_unix();
    if (ch->status == ST_DISPUTE) {
        if (now >= (u64)ch->deadline)
            return ERR_CHALLENGE_PERIOD_OVER;
        if (st->version <= ch->version)
            return ERR_STALE_VERSION;
    } else if (ch->status == ST_FORCED) {
        if (now >= (u64)ch->deadline)
            return ERR_CHALLENGE_PERIOD_OVER;
        if (st->version < ch->version)
            return ERR_STALE_VERSION;
        ch->deadline = (i64)(now + ch->challenge_duration);
        ch->status = ST_DISPUTE;
    } else {
        ch->deadline = (i64)(now + ch->challenge_duration);
        ch->status = ST_DISPUTE;
    }
    if (st->final_flag)
        ch->deadline = (i64)now;
    record_state(ch, st);
    u8 *e = event_start(EV_REGISTERED, ch);
    wr64(e, ch->version);
    wr64(e + 8, (u64)ch->deadline);
    emit(33 + 16);
    return 0;
}

/* ---- CONCLUDE: [4][bump of each HTLC's preimage record, n_htlcs bytes]
 * accounts: channel (writable), then the preimage-record PDA of each registered HTLC, in
 * order (the account may not exist: then the preimage was not revealed).
 * An HTLC pays its payee if the preimage was revealed on chain at or before its expiry,
 * and refunds its payer once the expiry has passed without a reveal. */
NOINLINE static u64 ix_conclude(const Input *in) {
    if (in->n_accounts < 1)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Channel *ch;
    u64 err = load_channel(in, &in->accounts[0], &ch);
    if (err)
        return err;
    if (ch->status != ST_DISPUTE && ch->status != ST_FORCED)
        return ERR_BAD_STATUS;
    u64 n = ch->n_htlcs;
    if (in->data_len != 1 + n)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 1 + n)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    u64 now = now_unix();
    u64 end = (u64)ch->deadline;
    if (ch->status == ST_DISPUTE && ch->has_app && !ch->final_flag)
        end += ch->challenge_duration; /* the period for a first forced move */
    if (now < end)
        return ERR_CHALLENGE_PERIOD_ACTIVE;
    u64 (*pay_out)[2] = ch->payout;
    for (u64 k = 0; k < ch->n_assets; k++) {
        int ok = conserves(ch, k);
        pay_out[k][0] = ok ? ch->balances[k][0] : ch->deposits[k][0];
        pay_out[k][1] = ok ? ch->balances[k][1] : ch->deposits[k][1];
    }
    for (u64 j = 0; j < n; j++) {
        const Htlc *h = &ch->htlcs[j];
        const AccountInfo *rec = &in->accounts[1 + j];
        u8 bump = in->data[1 + j];
        SignerSeed seeds[3] = {
            {SEED_PREIMAGE, sizeof(SEED_PREIMAGE)}, {h->payment_hash, 32}, {&bump, 1}};
        Pubkey expected;
        if (sol_create_program_address(seeds, 3, in->program_id, &expected) != 0 ||
            !key_eq(&expected, rec->key))
            return ERR_BAD_PDA;
        int revealed = 0;
        if (key_eq(rec->owner, in->program_id) && rec->data_len >= sizeof(PreimageRecord)) {
            const PreimageRecord *r = (const PreimageRecord *)rec->data;
            revealed = mem_eq(r->magic, PREIMAGE_MAGIC, 8) &&
                       mem_eq(r->payment_hash, h->payment_hash, 32) &&
                       (u64)r->revealed_at <= (u64)h->expiry;
        }
        u64 to;
        if (revealed)
            to = 1 - h->payer;
        else if (now > (u64)h->expiry)
            to = h->payer;
        else
            return ERR_HTLC_UNRESOLVED;
        u64 *slot = &pay_out[h->asset][to];
        if (*slot + h->amount < *slot)
            return ERR_OVERFLOW;
        *slot += h->amount;
    }
    ch->status = ST_CONCLUDED;
    emit_concluded(ch, 0);
    return 0;
}

/* ---- WITHDRAW: [5][participant u8][asset u8]
 * accounts: channel (writable), receiver (writable: the participant's own account for SOL,
 *           its token account of the mint for SPL), then for SPL: vault (writable), token
 *           program. Anyone may send it: the money can only go to the participant. */
NOINLINE static u64 ix_withdraw(const Input *in) {
    if (in->data_len != 3 || in->data[1] > 1)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 2)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Channel *ch;
    u64 err = load_channel(in, &in->accounts[0], &ch);
    if (err)
        return err;
    u8 who = in->data[1], k = in->data[2];
    if (k >= ch->n_assets)
        return ERR_BAD_ASSET;
    if (ch->status != ST_CONCLUDED)
        return ERR_NOT_CONCLUDED;
    u8 bit = (u8)(1u << (2 * k + who));
    if (ch->withdrawn & bit)
        return ERR_ALREADY_WITHDRAWN;
    int native = is_zero32(ch->mints[k].x);
    if (!native && in->n_accounts < 4)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *acc = in->accounts;
    u64 amount = ch->payout[k][who];
    Payment p = {&acc[0], &acc[1], native ? NULL : &acc[2], native ? NULL : &acc[3],
                 k, who, amount};
    if (!native && amount == 0 && (err = check_receiver(ch, k, who, &acc[1])))
        return err; /* nothing to move, but a wrong receiver is still an error */
    if ((err = pay(in, ch, &p)))
        return err;
    ch->withdrawn |= bit;
    u8 *e = event_start(EV_WITHDRAWN, ch);
    e[0] = k;
    e[1] = who;
    wr64(e + 2, amount);
    emit(33 + 10);
    return 0;
}

/* The app ABI call (chenilles_app.h) for a move from the registered state to `st`. */
static u64 app_call(const Channel *ch, const State *st, u64 mover, u64 now) {
    u8 *d = heap()->app_call;
    AppTail *t = app_tail((Channel *)ch);
    u64 n = ch->n_assets;
    d[0] = 1; /* APP_ABI_VALID_TRANSITION */
    d[1] = (u8)mover;
    d[2] = (u8)n;
    d[3] = ch->final_flag;
    d[4] = st->final_flag;
    d[5] = d[6] = d[7] = 0;
    wr64(d + 8, now);
    u8 *p = d + 16;
    sol_memcpy_(p, ch->balances, 16 * n);
    sol_memcpy_(p + 16 * n, st->balances, 16 * n);
    p += 32 * n;
    p[0] = (u8)t->len;
    p[1] = (u8)(t->len >> 8);
    sol_memcpy_(p + 2, t->data, t->len);
    p += 2 + t->len;
    p[0] = (u8)st->app_len;
    p[1] = (u8)(st->app_len >> 8);
    sol_memcpy_(p + 2, st->app_data, st->app_len);
    p += 2 + st->app_len;
    return (u64)(p - d);
}

static int same_htlcs(const Channel *ch, const State *st) {
    if (st->n_htlcs != ch->n_htlcs)
        return 0;
    for (u64 j = 0; j < ch->n_htlcs; j++)
        if (!mem_eq(&ch->htlcs[j], &st->htlcs[j], sizeof(Htlc)))
            return 0;
    return 1;
}

/* ---- PROGRESS: [7][ed25519 instruction index u8][mover u8]
 * accounts: channel (writable), Instructions sysvar, the channel's app program.
 * A forced move in an app channel: the signed message (one signature, by the mover) is the
 * state after one move from the registered one. Accepted from the end of a registration's
 * challenge period for one more period, or during the period a forced move opened; the
 * state must follow the registered one (version + 1, same HTLCs, each asset's total
 * unchanged) and the app program must accept the move. Opens a new period (none if the
 * move is final). */
NOINLINE static u64 ix_progress(const Input *in) {
    if (in->data_len != 3 || in->data[2] > 1)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 3)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Channel *ch;
    u64 err = load_channel(in, &in->accounts[0], &ch);
    if (err)
        return err;
    if (!ch->has_app)
        return ERR_NO_APP;
    const AccountInfo *program = &in->accounts[2];
    if (!key_eq(program->key, &app_tail(ch)->program) || !program->executable)
        return ERR_WRONG_APP;
    u64 now = now_unix(), mover = in->data[2];
    if (ch->status == ST_DISPUTE) {
        if (now < (u64)ch->deadline)
            return ERR_CHALLENGE_PERIOD_ACTIVE;
        if (now >= (u64)ch->deadline + ch->challenge_duration)
            return ERR_CHALLENGE_PERIOD_OVER;
    } else if (ch->status == ST_FORCED) {
        if (now >= (u64)ch->deadline)
            return ERR_CHALLENGE_PERIOD_OVER;
    } else {
        return ERR_BAD_STATUS;
    }
    if (ch->final_flag)
        return ERR_STATE_IS_FINAL;
    for (u64 k = 0; k < ch->n_assets; k++)
        if (!conserves(ch, k))
            return ERR_NOT_CONSERVING; /* an unfunded channel refunds; it is not played */
    if ((err = load_signed_state(in, &in->accounts[1], in->data[1], ch, mover)))
        return err;
    State *st = &heap()->state;
    if (st->version != ch->version + 1)
        return ERR_STALE_VERSION;
    if (!same_htlcs(ch, st))
        return ERR_BAD_MESSAGE;
    Instruction ix = {&app_tail(ch)->program, NULL, 0, heap()->app_call,
                      app_call(ch, st, mover, now)};
    if ((err = sol_invoke_signed_c(&ix, NULL, 0, NULL, 0)))
        return err;
    record_state(ch, st);
    ch->status = ST_FORCED;
    ch->deadline = (i64)(st->final_flag ? now : now + ch->challenge_duration);
    u8 *e = event_start(EV_PROGRESSED, ch);
    wr64(e, ch->version);
    wr64(e + 8, (u64)ch->deadline);
    e[16] = (u8)mover;
    e[17] = ch->final_flag;
    e[18] = ch->n_assets;
    sol_memcpy_(e + 19, ch->balances, 16 * ch->n_assets);
    u8 *a = e + 19 + 16 * ch->n_assets;
    AppTail *t = app_tail(ch);
    a[0] = (u8)t->len;
    a[1] = (u8)(t->len >> 8);
    sol_memcpy_(a + 2, t->data, t->len);
    emit((u64)(a + 2 + t->len - heap()->event));
    return 0;
}

/* ---- REVEAL: [6][preimage 32][bump u8][lamports u64]
 * accounts: payer (signer, writable), preimage-record PDA (writable), system program.
 * Records sha256(preimage), the preimage and the reveal time in a global registry. */
NOINLINE static u64 ix_reveal(const Input *in) {
    if (in->data_len != 1 + 32 + 1 + 8)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 3)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *payer = &in->accounts[0], *rec = &in->accounts[1];
    u64 err = check_system_program(&in->accounts[2]);
    if (err)
        return err;
    if (!payer->is_signer)
        return ERR_NOT_SIGNER;
    const u8 *preimage = in->data + 1;
    u8 bump = in->data[33];
    u64 lamports = rd64(in->data + 34);
    u8 hash[32];
    SignerSeed v = {preimage, 32};
    sol_sha256(&v, 1, hash);
    SignerSeed seeds[3] = {{SEED_PREIMAGE, sizeof(SEED_PREIMAGE)}, {hash, 32}, {&bump, 1}};
    Pubkey expected;
    if (sol_create_program_address(seeds, 3, in->program_id, &expected) != 0 ||
        !key_eq(&expected, rec->key))
        return ERR_BAD_PDA;
    if (key_eq(rec->owner, in->program_id))
        return ERR_ALREADY_REVEALED;
    SignerSeeds signer = {seeds, 3};
    CreateArgs args = {lamports, sizeof(PreimageRecord), in->program_id, &signer};
    if ((err = create_pda_account(payer, rec, &in->accounts[2], &args)))
        return err;
    PreimageRecord *r = (PreimageRecord *)rec->data;
    Clock c;
    sol_get_clock_sysvar(&c);
    sol_memcpy_(r->magic, PREIMAGE_MAGIC, 8);
    sol_memcpy_(r->payment_hash, hash, 32);
    sol_memcpy_(r->preimage, preimage, 32);
    r->revealed_at = c.unix_timestamp;
    r->slot = c.slot;
    u8 *e = heap()->event;
    e[0] = EV_REVEALED;
    sol_memcpy_(e + 1, hash, 32);
    sol_memcpy_(e + 33, preimage, 32);
    wr64(e + 65, (u64)c.unix_timestamp);
    wr64(e + 73, c.slot);
    emit(81);
    return 0;
}

/* CPI spl_token::close_account(vault -> dest), signed by the channel PDA (the vault's
 * authority). The token program refuses a vault that still holds tokens. */
NOINLINE static u64 close_vault(const Channel *ch, AccountInfo *token, AccountInfo *vault,
                                AccountInfo *dest, AccountInfo *chan) {
    u8 *d = heap()->scratch;
    d[0] = 9; /* CloseAccount */
    AccountMeta metas[3] = {{vault->key, 1, 0}, {dest->key, 1, 0}, {chan->key, 0, 1}};
    Instruction ix = {token->key, metas, 3, d, 1};
    AccountInfo *infos = heap()->cpi;
    infos[0] = *vault;
    infos[1] = *dest;
    infos[2] = *chan;
    SignerSeed seeds[3];
    channel_seeds(ch, seeds);
    SignerSeeds signer = {seeds, 3};
    return sol_invoke_signed_c(&ix, infos, 3, &signer, 1);
}

/* ---- CLOSE_ACCOUNTS: [8]
 * accounts: channel (writable), the rent payer recorded at OPEN (writable), then if the
 * channel holds SPL assets: token program, and per SPL asset in order its vault (writable).
 * Gives the rent of the channel account and its vaults back to whoever paid it at OPEN,
 * once nothing in them belongs to a participant any more: the channel is concluded or
 * cooperatively closed and every non-zero payout has been withdrawn (the token program
 * also refuses to close a vault that still holds tokens). Anyone may send it: the lamports
 * can only go to the rent payer. The channel account is emptied as the runtime requires
 * to delete it (no lamports, no data, owned by the system program), so a second call finds
 * no channel (WRONG_CHANNEL_ACCOUNT). OPEN of the same channel id may then create a fresh
 * account, with no deposits: an old state of the closed channel does not conserve its
 * (zero) deposits and is refused, and only the participants themselves can deposit. */
NOINLINE static u64 ix_close_accounts(const Input *in) {
    if (in->data_len != 1)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 2)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *acc = in->accounts, *chan = &acc[0], *dest = &acc[1];
    Channel *ch;
    u64 err = load_channel(in, chan, &ch);
    if (err)
        return err;
    if (ch->status != ST_CONCLUDED && ch->status != ST_CLOSED)
        return ERR_NOT_CONCLUDED;
    u64 n_tokens = 0;
    for (u64 k = 0; k < ch->n_assets; k++) {
        for (u64 who = 0; who < 2; who++)
            if (!(ch->withdrawn & (1u << (2 * k + who))) && ch->payout[k][who] != 0)
                return ERR_NOT_WITHDRAWN;
        if (!is_zero32(ch->mints[k].x))
            n_tokens++;
    }
    if (!key_eq(dest->key, &ch->rent_payer))
        return ERR_WRONG_RENT_PAYER;
    if (!dest->is_writable)
        return ERR_NOT_WRITABLE;
    u64 refunded = 0;
    if (n_tokens) {
        if (in->n_accounts < 3 + n_tokens)
            return ERR_NOT_ENOUGH_ACCOUNTS;
        if ((err = check_token_program(&acc[2])))
            return err;
    }
    /* token CPIs first, the channel's own lamports last (see COOP_CLOSE) */
    u64 next = 3;
    for (u64 k = 0; k < ch->n_assets; k++) {
        if (is_zero32(ch->mints[k].x))
            continue;
        AccountInfo *vault = &acc[next++];
        if ((err = check_vault(in, chan, ch, k, vault)))
            return err;
        refunded += *vault->lamports;
        if ((err = close_vault(ch, &acc[2], vault, dest, chan)))
            return err;
    }
    u64 lamports = *chan->lamports;
    refunded += lamports;
    if ((err = move_lamports(chan, dest, lamports)))
        return err;
    u8 *e = event_start(EV_CLOSED, ch);
    wr64(e, refunded);
    emit(33 + 8);
    /* what the runtime needs to delete the account: data zeroed and shrunk to nothing
     * (the serialized length sits 8 bytes before the data), owner back to the system
     * program (allowed once the data is zero), no lamports */
    sol_memset_(chan->data, 0, chan->data_len);
    *(u64 *)(chan->data - 8) = 0;
    chan->data_len = 0;
    sol_memset_(chan->owner, 0, 32);
    return 0;
}

u64 entrypoint(u8 *input) {
    Input in;
    deserialize(input, heap()->infos, MAX_ACCOUNTS, &in);
    if (in.data_len < 1)
        return ERR_BAD_INSTRUCTION;
    switch (in.data[0]) {
    case IX_OPEN:
        return ix_open(&in);
    case IX_DEPOSIT:
        return ix_deposit(&in);
    case IX_COOP_CLOSE:
        return ix_coop_close(&in);
    case IX_REGISTER:
        return ix_register(&in);
    case IX_CONCLUDE:
        return ix_conclude(&in);
    case IX_WITHDRAW:
        return ix_withdraw(&in);
    case IX_REVEAL:
        return ix_reveal(&in);
    case IX_PROGRESS:
        return ix_progress(&in);
    case IX_CLOSE_ACCOUNTS:
        return ix_close_accounts(&in);
    default:
        return ERR_BAD_INSTRUCTION;
    }
}
