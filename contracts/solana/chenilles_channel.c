/* Chenilles channel adjudicator for Solana (2-party channels, native SOL).
 *
 * One program holds the lamports of many channels: one channel account per channel, a
 * PDA of seeds ["channel", channel_id], owned by this program, whose lamports are the
 * channel's vault (rent reserve + deposits). Preimages revealed on chain live in a global
 * registry: one PDA per payment hash, seeds ["preimage", sha256(preimage)].
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
 * Only the native asset (mint = 32 zero bytes, amounts in lamports) is supported here.
 * Error codes are the ERR_* below (InstructionError::Custom(code)); on any error the
 * runtime discards every change of the transaction, so no lamports move.
 */
#include "sol_abi.h"

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

/* ---- instructions ---- */
#define IX_OPEN 0
#define IX_DEPOSIT 1
#define IX_COOP_CLOSE 2
#define IX_REGISTER 3
#define IX_CONCLUDE 4
#define IX_WITHDRAW 5
#define IX_REVEAL 6

/* ---- channel status ---- */
#define ST_OPEN 0
#define ST_DISPUTE 1
#define ST_CONCLUDED 2
#define ST_CLOSED 3

#define MAX_HTLCS 8
#define MAX_ACCOUNTS 16

typedef struct {
    u64 id;
    u8 payer; /* 0 = A pays B, 1 = B pays A */
    u8 asset;
    u8 pad[6];
    u64 amount;
    u8 payment_hash[32];
    i64 expiry; /* unix seconds (Clock sysvar) */
} Htlc;       /* 64 bytes */

typedef struct {
    u8 magic[8]; /* "CHNLSOL1" */
    u8 channel_id[32];
    Pubkey parts[2];
    u64 challenge_duration;
    u64 nonce;
    u8 status;
    u8 bump;
    u8 withdrawn; /* bit i: participant i has withdrawn */
    u8 final_flag;
    u8 n_htlcs;
    u8 pad[3];
    u64 deposits[2];
    u64 version;
    i64 deadline;
    u64 balances[2]; /* of the registered state */
    u64 payout[2];   /* after conclusion */
    Htlc htlcs[MAX_HTLCS];
} Channel; /* 704 bytes */

typedef struct {
    u8 magic[8]; /* "PREIMAG1" */
    u8 payment_hash[32];
    u8 preimage[32];
    i64 revealed_at;
    u64 slot;
} PreimageRecord; /* 88 bytes */

_Static_assert(sizeof(Htlc) == 64, "Htlc layout");
_Static_assert(sizeof(Channel) == 704, "Channel layout");
_Static_assert(sizeof(PreimageRecord) == 88, "PreimageRecord layout");

static const u8 CHANNEL_MAGIC[8] = "CHNLSOL1";
static const u8 PREIMAGE_MAGIC[8] = "PREIMAG1";
static const u8 MSG_MAGIC[16] = "CHENILLES-SOL-v1";
static const u8 CHANNEL_ID_DOMAIN[21] = "CHENILLES-SOL-CHANNEL";
static const u8 SEED_CHANNEL[7] = "channel";
static const u8 SEED_PREIMAGE[8] = "preimage";

static const Pubkey ED25519_PROGRAM_ID = {{
    0x03, 0x7d, 0x46, 0xd6, 0x7c, 0x93, 0xfb, 0xbe, 0x12, 0xf9, 0x42, 0x8f, 0x83, 0x8d, 0x40, 0xff,
    0x05, 0x70, 0x74, 0x49, 0x27, 0xf4, 0x8a, 0x64, 0xfc, 0xca, 0x70, 0x44, 0x80, 0x00, 0x00, 0x00}};
static const Pubkey INSTRUCTIONS_SYSVAR_ID = {{
    0x06, 0xa7, 0xd5, 0x17, 0x18, 0x7b, 0xd1, 0x66, 0x35, 0xda, 0xd4, 0x04, 0x55, 0xfd, 0xc2, 0xc0,
    0xc1, 0x24, 0xc6, 0x8f, 0x21, 0x56, 0x75, 0xa5, 0xdb, 0xba, 0xcb, 0x5f, 0x08, 0x00, 0x00, 0x00}};

#define MSG_HEADER_LEN (16 + 32 + 32 + 8 + 1 + 1)
#define MSG_ASSET_LEN (32 + 8 + 8)
#define MSG_HTLC_LEN (8 + 1 + 1 + 8 + 32 + 8)
#define ED25519_OFFSETS_START 2
#define ED25519_OFFSETS_LEN 14

/* A parsed, signature-checked state. Lives in the heap (too big for a 512-byte frame). */
typedef struct {
    u64 version;
    u8 final_flag;
    u8 n_htlcs;
    u64 balances[2];
    Htlc htlcs[MAX_HTLCS];
} State;

typedef struct {
    AccountInfo infos[MAX_ACCOUNTS];
    State state;
    u8 scratch[256];
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

/* Checks that `acc` is an initialized channel account of this program. */
static u64 load_channel(const Input *in, const AccountInfo *acc, Channel **out) {
    if (!key_eq(acc->owner, in->program_id) || acc->data_len < sizeof(Channel) ||
        !mem_eq(acc->data, CHANNEL_MAGIC, 8))
        return ERR_WRONG_CHANNEL_ACCOUNT;
    if (!acc->is_writable)
        return ERR_NOT_WRITABLE;
    *out = (Channel *)acc->data;
    return 0;
}

static u64 move_lamports(AccountInfo *from, AccountInfo *to, u64 amount) {
    if (*from->lamports < amount)
        return ERR_OVERFLOW;
    if (*to->lamports + amount < *to->lamports)
        return ERR_OVERFLOW;
    *from->lamports -= amount;
    *to->lamports += amount;
    return 0;
}

/* CPI: system_program::create_account(payer -> new_acc) signed by the PDA seeds. */
typedef struct {
    u64 lamports;
    u64 space;
    const SignerSeeds *signer;
} CreateArgs;

static u64 create_pda_account(const Input *in, AccountInfo *payer, AccountInfo *new_acc,
                              AccountInfo *system, const CreateArgs *args) {
    u64 lamports = args->lamports, space = args->space;
    const SignerSeeds *signer = args->signer;
    u8 *d = heap()->scratch;
    AccountMeta metas[2] = {{payer->key, 1, 1}, {new_acc->key, 1, 1}};
    *(u32 *)(d + 0) = 0; /* CreateAccount */
    *(u64 *)(d + 4) = lamports;
    *(u64 *)(d + 12) = space;
    sol_memcpy_(d + 20, in->program_id, 32);
    Instruction ix = {system->key, metas, 2, d, 52};
    AccountInfo *infos = heap()->infos + MAX_ACCOUNTS - 2; /* spare slots */
    infos[0] = *payer;
    infos[1] = *new_acc;
    return sol_invoke_signed_c(&ix, infos, 2, signer, 1);
}

static u64 check_system_program(const AccountInfo *a) {
    return is_zero32(a->key->x) ? 0 : ERR_WRONG_SYSTEM_PROGRAM;
}

/* ---- OPEN: [0][A 32][B 32][challenge_duration u64][nonce u64][bump u8][lamports u64]
 * accounts: payer (signer, writable), channel PDA (writable), system program */
static u64 ix_open(const Input *in) {
    if (in->data_len != 1 + 32 + 32 + 8 + 8 + 1 + 8)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 3)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *payer = &in->accounts[0], *chan = &in->accounts[1];
    u64 err = check_system_program(&in->accounts[2]);
    if (err)
        return err;
    if (!payer->is_signer)
        return ERR_NOT_SIGNER;
    const u8 *d = in->data + 1;
    if (key_eq((const Pubkey *)d, (const Pubkey *)(d + 32)))
        return ERR_BAD_PARTICIPANTS;
    u8 bump = d[80];
    u64 lamports = rd64(d + 81);

    u8 channel_id[32];
    SignerSeed parts[3] = {
        {CHANNEL_ID_DOMAIN, sizeof(CHANNEL_ID_DOMAIN)},
        {in->program_id->x, 32},
        {d, 80}, /* A | B | challenge_duration | nonce */
    };
    sol_sha256(parts, 3, channel_id);

    SignerSeed seeds[3] = {{SEED_CHANNEL, sizeof(SEED_CHANNEL)}, {channel_id, 32}, {&bump, 1}};
    Pubkey expected;
    if (sol_create_program_address(seeds, 3, in->program_id, &expected) != 0 ||
        !key_eq(&expected, chan->key))
        return ERR_BAD_PDA;
    if (key_eq(chan->owner, in->program_id))
        return ERR_WRONG_CHANNEL_ACCOUNT; /* already initialized */
    SignerSeeds signer = {seeds, 3};
    CreateArgs args = {lamports, sizeof(Channel), &signer};
    err = create_pda_account(in, payer, chan, &in->accounts[2], &args);
    if (err)
        return err;
    Channel *ch = (Channel *)chan->data;
    sol_memcpy_(ch->magic, CHANNEL_MAGIC, 8);
    sol_memcpy_(ch->channel_id, channel_id, 32);
    sol_memcpy_(ch->parts, d, 64);
    ch->challenge_duration = rd64(d + 64);
    ch->nonce = rd64(d + 72);
    ch->bump = bump;
    ch->status = ST_OPEN;
    return 0;
}

/* ---- DEPOSIT: [1][participant u8][amount u64]
 * accounts: funder (signer, writable), channel (writable), system program */
static u64 ix_deposit(const Input *in) {
    if (in->data_len != 1 + 1 + 8)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 3)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *funder = &in->accounts[0], *chan = &in->accounts[1];
    Channel *ch;
    u64 err = load_channel(in, chan, &ch);
    if (err)
        return err;
    if ((err = check_system_program(&in->accounts[2])))
        return err;
    u8 who = in->data[1];
    u64 amount = rd64(in->data + 2);
    if (who > 1)
        return ERR_BAD_INSTRUCTION;
    if (ch->status != ST_OPEN)
        return ERR_BAD_STATUS;
    if (!funder->is_signer)
        return ERR_NOT_SIGNER;
    if (ch->deposits[who] + amount < amount)
        return ERR_OVERFLOW;
    /* CPI system_program::transfer(funder -> channel, amount) */
    u8 *d = heap()->scratch;
    *(u32 *)d = 2; /* Transfer */
    *(u64 *)(d + 4) = amount;
    AccountMeta metas[2] = {{funder->key, 1, 1}, {chan->key, 1, 0}};
    Instruction ix = {in->accounts[2].key, metas, 2, d, 12};
    AccountInfo *infos = heap()->infos + MAX_ACCOUNTS - 2;
    infos[0] = *funder;
    infos[1] = *chan;
    err = sol_invoke_signed_c(&ix, infos, 2, NULL, 0);
    if (err)
        return err;
    ch->deposits[who] += amount;
    return 0;
}

/* Reads the Ed25519 instruction at `ed_index` from the Instructions sysvar, checks that it
 * carries exactly two self-contained signatures over one message by participants A and B,
 * then parses and validates the message into heap()->state. */
static u64 load_signed_state(const Input *in, const AccountInfo *sysvar, u8 ed_index,
                             const Channel *ch) {
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
    if (ed_len < ED25519_OFFSETS_START + 2 * ED25519_OFFSETS_LEN || ed[0] != 2)
        return ERR_BAD_SIGNATURE_IX;

    const u8 *msg = NULL;
    u64 msg_len = 0;
    for (u64 i = 0; i < 2; i++) {
        const u8 *o = ed + ED25519_OFFSETS_START + ED25519_OFFSETS_LEN * i;
        u64 pk_off = rd16(o + 4), m_off = rd16(o + 8), m_len = rd16(o + 10);
        /* signature, public key and message must all live in the Ed25519 instruction */
        if (rd16(o + 2) != 0xFFFF || rd16(o + 6) != 0xFFFF || rd16(o + 12) != 0xFFFF)
            return ERR_BAD_SIGNATURE_IX;
        if (pk_off + 32 > ed_len || m_off + m_len > ed_len)
            return ERR_BAD_SIGNATURE_IX;
        if (!key_eq((const Pubkey *)(ed + pk_off), &ch->parts[i]))
            return ERR_BAD_SIGNER;
        if (i == 0) {
            msg = ed + m_off;
            msg_len = m_len;
        } else if (m_len != msg_len || !mem_eq(msg, ed + m_off, m_len)) {
            return ERR_BAD_SIGNATURE_IX;
        }
    }

    /* ---- parse the state message ---- */
    if (msg_len < MSG_HEADER_LEN + MSG_ASSET_LEN + 1 || !mem_eq(msg, MSG_MAGIC, 16))
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
    if (msg[89] != 1)
        return ERR_BAD_ASSET;
    const u8 *a = msg + MSG_HEADER_LEN;
    if (!is_zero32(a))
        return ERR_BAD_ASSET;
    st->balances[0] = rd64(a + 32);
    st->balances[1] = rd64(a + 40);
    u64 n_htlcs = a[48];
    if (n_htlcs > MAX_HTLCS)
        return ERR_TOO_MANY_HTLCS;
    if (msg_len != MSG_HEADER_LEN + MSG_ASSET_LEN + 1 + MSG_HTLC_LEN * n_htlcs)
        return ERR_BAD_MESSAGE;
    st->n_htlcs = (u8)n_htlcs;
    u64 total = st->balances[0] + st->balances[1];
    if (total < st->balances[0])
        return ERR_OVERFLOW;
    const u8 *h = a + MSG_ASSET_LEN + 1;
    for (u64 k = 0; k < n_htlcs; k++, h += MSG_HTLC_LEN) {
        Htlc *x = &st->htlcs[k];
        x->id = rd64(h);
        x->payer = h[8];
        x->asset = h[9];
        x->amount = rd64(h + 10);
        sol_memcpy_(x->payment_hash, h + 18, 32);
        x->expiry = (i64)rd64(h + 50);
        if (x->payer > 1)
            return ERR_BAD_MESSAGE;
        if (x->asset != 0)
            return ERR_BAD_ASSET;
        if (total + x->amount < total)
            return ERR_OVERFLOW;
        total += x->amount;
    }
    u64 deposited = ch->deposits[0] + ch->deposits[1];
    if (deposited < ch->deposits[0])
        return ERR_OVERFLOW;
    if (total != deposited)
        return ERR_NOT_CONSERVING;
    return 0;
}

/* ---- COOP_CLOSE: [2][ed25519 instruction index u8]
 * accounts: channel (writable), A (writable), B (writable), Instructions sysvar */
static u64 ix_coop_close(const Input *in) {
    if (in->data_len != 2)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 4)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *acc = in->accounts;
    Channel *ch;
    u64 err = load_channel(in, &acc[0], &ch);
    if (err)
        return err;
    if (ch->status != ST_OPEN && ch->status != ST_DISPUTE)
        return ERR_BAD_STATUS;
    if ((err = load_signed_state(in, &acc[3], in->data[1], ch)))
        return err;
    State *st = &heap()->state;
    if (!st->final_flag)
        return ERR_NOT_FINAL;
    if (st->n_htlcs)
        return ERR_HTLCS_IN_FINAL;
    if (ch->status == ST_DISPUTE && st->version < ch->version)
        return ERR_STALE_VERSION;
    for (u64 i = 0; i < 2; i++)
        if (!key_eq(acc[1 + i].key, &ch->parts[i]))
            return ERR_WRONG_PARTICIPANT_ACCOUNT;
    for (u64 i = 0; i < 2; i++)
        if ((err = move_lamports(&acc[0], &acc[1 + i], st->balances[i])))
            return err;
    ch->version = st->version;
    ch->final_flag = 1;
    ch->balances[0] = ch->payout[0] = st->balances[0];
    ch->balances[1] = ch->payout[1] = st->balances[1];
    ch->n_htlcs = 0;
    ch->withdrawn = 3;
    ch->status = ST_CLOSED;
    return 0;
}

/* ---- REGISTER: [3][ed25519 instruction index u8]
 * accounts: channel (writable), Instructions sysvar.
 * Registers a state and starts the challenge period, or, during the period, replaces the
 * registered state by a newer one. A final state ends the period at once. */
static u64 ix_register(const Input *in) {
    if (in->data_len != 2)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 2)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Channel *ch;
    u64 err = load_channel(in, &in->accounts[0], &ch);
    if (err)
        return err;
    if (ch->status != ST_OPEN && ch->status != ST_DISPUTE)
        return ERR_BAD_STATUS;
    if ((err = load_signed_state(in, &in->accounts[1], in->data[1], ch)))
        return err;
    State *st = &heap()->state;
    u64 now = now_unix();
    if (ch->status == ST_DISPUTE) {
        if (now >= (u64)ch->deadline)
            return ERR_CHALLENGE_PERIOD_OVER;
        if (st->version <= ch->version)
            return ERR_STALE_VERSION;
    } else {
        ch->deadline = (i64)(now + ch->challenge_duration);
        ch->status = ST_DISPUTE;
    }
    if (st->final_flag)
        ch->deadline = (i64)now;
    ch->version = st->version;
    ch->final_flag = st->final_flag;
    ch->balances[0] = st->balances[0];
    ch->balances[1] = st->balances[1];
    ch->n_htlcs = st->n_htlcs;
    sol_memcpy_(ch->htlcs, st->htlcs, sizeof(Htlc) * st->n_htlcs);
    return 0;
}

/* ---- CONCLUDE: [4][bump of each HTLC's preimage record, n_htlcs bytes]
 * accounts: channel (writable), then the preimage-record PDA of each registered HTLC, in
 * order (the account may not exist: then the preimage was not revealed).
 * An HTLC pays its payee if the preimage was revealed on chain at or before its expiry,
 * and refunds its payer once the expiry has passed without a reveal. */
static u64 ix_conclude(const Input *in) {
    if (in->n_accounts < 1)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Channel *ch;
    u64 err = load_channel(in, &in->accounts[0], &ch);
    if (err)
        return err;
    if (ch->status != ST_DISPUTE)
        return ERR_BAD_STATUS;
    u64 n = ch->n_htlcs;
    if (in->data_len != 1 + n)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 1 + n)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    u64 now = now_unix();
    if (now < (u64)ch->deadline)
        return ERR_CHALLENGE_PERIOD_ACTIVE;
    u64 pay[2] = {ch->balances[0], ch->balances[1]};
    for (u64 k = 0; k < n; k++) {
        const Htlc *h = &ch->htlcs[k];
        const AccountInfo *rec = &in->accounts[1 + k];
        u8 bump = in->data[1 + k];
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
        if (pay[to] + h->amount < pay[to])
            return ERR_OVERFLOW;
        pay[to] += h->amount;
    }
    ch->payout[0] = pay[0];
    ch->payout[1] = pay[1];
    ch->status = ST_CONCLUDED;
    return 0;
}

/* ---- WITHDRAW: [5][participant u8]
 * accounts: channel (writable), the participant's account (writable) */
static u64 ix_withdraw(const Input *in) {
    if (in->data_len != 2 || in->data[1] > 1)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 2)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Channel *ch;
    u64 err = load_channel(in, &in->accounts[0], &ch);
    if (err)
        return err;
    u8 who = in->data[1];
    if (ch->status != ST_CONCLUDED)
        return ERR_NOT_CONCLUDED;
    if (ch->withdrawn & (1u << who))
        return ERR_ALREADY_WITHDRAWN;
    if (!key_eq(in->accounts[1].key, &ch->parts[who]))
        return ERR_WRONG_PARTICIPANT_ACCOUNT;
    if ((err = move_lamports(&in->accounts[0], &in->accounts[1], ch->payout[who])))
        return err;
    ch->withdrawn |= (u8)(1u << who);
    return 0;
}

/* ---- REVEAL: [6][preimage 32][bump u8][lamports u64]
 * accounts: payer (signer, writable), preimage-record PDA (writable), system program.
 * Records sha256(preimage), the preimage and the reveal time in a global registry. */
static u64 ix_reveal(const Input *in) {
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
    CreateArgs args = {lamports, sizeof(PreimageRecord), &signer};
    if ((err = create_pda_account(in, payer, rec, &in->accounts[2], &args)))
        return err;
    PreimageRecord *r = (PreimageRecord *)rec->data;
    Clock c;
    sol_get_clock_sysvar(&c);
    sol_memcpy_(r->magic, PREIMAGE_MAGIC, 8);
    sol_memcpy_(r->payment_hash, hash, 32);
    sol_memcpy_(r->preimage, preimage, 32);
    r->revealed_at = c.unix_timestamp;
    r->slot = c.slot;
    return 0;
}

u64 entrypoint(u8 *input) {
    Input in;
    deserialize(input, heap()->infos, MAX_ACCOUNTS - 2, &in);
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
    default:
        return ERR_BAD_INSTRUCTION;
    }
}
