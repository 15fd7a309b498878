/* Chenilles group adjudicator for Solana: channels of N members (2 to 16) over SOL.
 *
 * A separate program from chenilles_channel.c on purpose: the two-party program carries
 * HTLCs, SPL vaults and apps in an encoding the two-party backend signs; a group channel
 * carries SOL balances only, and keeping it apart leaves every two-party encoding as is.
 *
 * Per channel, one account: PDA ["group", channel_id], owned by this program; its lamports
 * are the rent reserve plus the members' deposits. The channel id commits to what OPEN
 * stores:
 *   sha256("CHENILLES-SOL-GROUP" | program_id | n u8 | members 32*n |
 *          challenge_duration u64 | nonce 32)
 *
 * States are signed by every member with ed25519 over (all integers LE)
 *   "CHNLGRP1" (8) | channel_id (32) | version u64 | final u8 | n u8 | n * amount u64
 * (the program id is bound through the channel id). Signatures are checked by the Ed25519
 * precompile: the caller adds one Ed25519 instruction whose entries all sign the same
 * message, every offset pointing into that instruction, and passes its index; we read it
 * back from the Instructions sysvar.
 *
 * A transaction is at most 1232 bytes, and each signature entry costs 110 of them, so one
 * transaction carries the signatures of at most 7 members. For larger groups REGISTER
 * collects signatures over several transactions in a signature record, PDA
 * ["sigs", channel_id, sha256(message)]: one record per message, so nobody can disturb the
 * collection of another message's signatures. The state takes effect in the transaction
 * that brings the last missing signature.
 *
 * Dispute: REGISTER records a fully signed state and starts the challenge period, or,
 * during it, replaces the recorded state by one of a higher version (a refutation); a
 * final state ends the period at once. CONCLUDE (after the period) fixes every member's
 * payout; WITHDRAW pays one member (anyone may send it: the lamports go to the member).
 * Money rule: if the recorded balances add up to what was deposited, each member gets its
 * balance; otherwise (version 0 signed before some member funded) each gets its deposit.
 * Errors are the ERR_* below (InstructionError::Custom); on an error the runtime discards
 * every change of the transaction. Events: sol_log_data, tag byte + payload (EV_*).
 */
#include "sol_abi.h"

#define NOINLINE __attribute__((noinline))

/* ---- error codes (keep in sync with group_client.py) ---- */
#define ERR_BAD_INSTRUCTION 1
#define ERR_NOT_ENOUGH_ACCOUNTS 2
#define ERR_WRONG_GROUP_ACCOUNT 3
#define ERR_BAD_PDA 4
#define ERR_NOT_SIGNER 5
#define ERR_NOT_WRITABLE 6
#define ERR_BAD_SYSVAR 7
#define ERR_MISSING_SIGNATURE 8
#define ERR_BAD_SIGNATURE_IX 9
#define ERR_BAD_SIGNER 10
#define ERR_BAD_MESSAGE 11
#define ERR_WRONG_CHANNEL 12
#define ERR_STALE_VERSION 13
#define ERR_BAD_STATUS 14
#define ERR_CHALLENGE_PERIOD_OVER 15
#define ERR_CHALLENGE_PERIOD_ACTIVE 16
#define ERR_ALREADY_WITHDRAWN 17
#define ERR_WRONG_MEMBER_ACCOUNT 18
#define ERR_OVERFLOW 19
#define ERR_BAD_MEMBERS 20
#define ERR_WRONG_SYSTEM_PROGRAM 21
#define ERR_DUPLICATE_SIGNER 22

#define IX_OPEN 0
#define IX_DEPOSIT 1
#define IX_REGISTER 2
#define IX_CONCLUDE 3
#define IX_WITHDRAW 4

#define ST_OPEN 0
#define ST_DISPUTE 1
#define ST_CONCLUDED 2

#define EV_OPENED 0     /* channel_id 32 */
#define EV_FUNDED 1     /* channel_id 32 | member u8 | amount u64 */
#define EV_REGISTERED 2 /* channel_id 32 | version u64 | deadline i64 */
#define EV_CONCLUDED 3  /* channel_id 32 | version u64 */
#define EV_WITHDRAWN 4  /* channel_id 32 | member u8 | amount u64 */
#define EV_SIGNED 5     /* channel_id 32 | version u64 | signature mask u64 (still partial) */

#define MAX_MEMBERS 16
#define MIN_MEMBERS 2
#define MAX_ACCOUNTS 8

typedef struct {
    u8 magic[8]; /* "CHNLGRP1" */
    u8 channel_id[32];
    u64 challenge_duration;
    u8 status;
    u8 bump;
    u8 n;
    u8 final_flag;
    u8 pad[4];
    u64 version;
    i64 deadline;
    u64 withdrawn; /* bit per member */
    Pubkey members[MAX_MEMBERS];
    u64 deposits[MAX_MEMBERS];
    u64 balances[MAX_MEMBERS]; /* of the recorded state */
    u64 payout[MAX_MEMBERS];   /* after conclusion */
} Group;                       /* 976 bytes */

typedef struct {
    u8 magic[8]; /* "GRPSIGS1" */
    u64 mask;    /* members whose signature on this record's message was checked */
} SigRecord;

_Static_assert(sizeof(Group) == 976, "Group layout");
_Static_assert(sizeof(SigRecord) == 16, "SigRecord layout");

static const u8 GROUP_MAGIC[8] = "CHNLGRP1";
static const u8 SIGS_MAGIC[8] = "GRPSIGS1";
static const u8 MSG_MAGIC[8] = "CHNLGRP1";
static const u8 CHANNEL_ID_DOMAIN[19] = "CHENILLES-SOL-GROUP";
static const u8 SEED_GROUP[5] = "group";
static const u8 SEED_SIGS[4] = "sigs";

static const Pubkey ED25519_PROGRAM_ID = {{
    0x03, 0x7d, 0x46, 0xd6, 0x7c, 0x93, 0xfb, 0xbe, 0x12, 0xf9, 0x42, 0x8f, 0x83, 0x8d, 0x40, 0xff,
    0x05, 0x70, 0x74, 0x49, 0x27, 0xf4, 0x8a, 0x64, 0xfc, 0xca, 0x70, 0x44, 0x80, 0x00, 0x00, 0x00}};
static const Pubkey INSTRUCTIONS_SYSVAR_ID = {{
    0x06, 0xa7, 0xd5, 0x17, 0x18, 0x7b, 0xd1, 0x66, 0x35, 0xda, 0xd4, 0x04, 0x55, 0xfd, 0xc2, 0xc0,
    0xc1, 0x24, 0xc6, 0x8f, 0x21, 0x56, 0x75, 0xa5, 0xdb, 0xba, 0xcb, 0x5f, 0x08, 0x00, 0x00, 0x00}};

#define MSG_HEADER_LEN (8 + 32 + 8 + 1 + 1)
#define ED25519_OFFSETS_START 2
#define ED25519_OFFSETS_LEN 14

/* A parsed state message with the members who signed it in this transaction. */
typedef struct {
    u64 version;
    u8 final_flag;
    u8 pad[7];
    u64 mask;
    u64 balances[MAX_MEMBERS];
    const u8 *msg;
    u64 msg_len;
} Signed;

typedef struct {
    AccountInfo infos[MAX_ACCOUNTS];
    AccountInfo cpi[2];
    Signed sig;
    u8 scratch[64];
    u8 event[64];
} Heap;

static inline Heap *heap(void) { return (Heap *)MM_HEAP_START; }

static inline void wr64(u8 *p, u64 v) { *(u64 *)(void *)p = v; }

static inline i64 now_unix(void) {
    Clock c;
    sol_get_clock_sysvar(&c);
    return c.unix_timestamp;
}

static u64 full_mask(const Group *g) { return (1UL << g->n) - 1; }

static void emit(u64 len) {
    SignerSeed field = {heap()->event, len};
    sol_log_data(&field, 1);
}

static u8 *event_start(u8 tag, const Group *g) {
    u8 *e = heap()->event;
    e[0] = tag;
    sol_memcpy_(e + 1, g->channel_id, 32);
    return e + 33;
}

static u64 load_group(const Input *in, const AccountInfo *acc, Group **out) {
    if (!key_eq(acc->owner, in->program_id) || acc->data_len < sizeof(Group) ||
        !mem_eq(acc->data, GROUP_MAGIC, 8))
        return ERR_WRONG_GROUP_ACCOUNT;
    if (!acc->is_writable)
        return ERR_NOT_WRITABLE;
    *out = (Group *)acc->data;
    return 0;
}

static u64 check_system_program(const AccountInfo *a) {
    for (u64 i = 0; i < 32; i++)
        if (a->key->x[i])
            return ERR_WRONG_SYSTEM_PROGRAM;
    return 0;
}

/* CPI system_program::create_account(payer -> acc, `space` bytes, owned by us), signed by
 * the new account's seeds; `lamports` from the payer. */
NOINLINE static u64 create_pda(const Input *in, AccountInfo *payer, AccountInfo *acc,
                               AccountInfo *system, const SignerSeeds *signer) {
    u8 *d = heap()->scratch;
    AccountMeta metas[2] = {{payer->key, 1, 1}, {acc->key, 1, 1}};
    *(u32 *)d = 0; /* CreateAccount; lamports and space were written at d+4 and d+12 */
    sol_memcpy_(d + 20, in->program_id, 32);
    Instruction ix = {system->key, metas, 2, d, 52};
    AccountInfo *infos = heap()->cpi;
    infos[0] = *payer;
    infos[1] = *acc;
    u64 err = sol_invoke_signed_c(&ix, infos, 2, signer, 1);
    acc->data_len = *(u64 *)(acc->data - 8);
    return err;
}

/* ---- OPEN: [0][n u8][members 32*n][challenge_duration u64][nonce 32][bump u8][lamports u64]
 * accounts: payer (signer, writable), group PDA (writable), system program. */
NOINLINE static u64 ix_open(const Input *in) {
    if (in->data_len < 2)
        return ERR_BAD_INSTRUCTION;
    u64 n = in->data[1];
    if (n < MIN_MEMBERS || n > MAX_MEMBERS)
        return ERR_BAD_MEMBERS;
    if (in->data_len != 2 + 32 * n + 8 + 32 + 1 + 8)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 3)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *payer = &in->accounts[0], *acc = &in->accounts[1], *system = &in->accounts[2];
    u64 err = check_system_program(system);
    if (err)
        return err;
    if (!payer->is_signer)
        return ERR_NOT_SIGNER;
    const u8 *members = in->data + 2;
    for (u64 i = 0; i < n; i++)
        for (u64 j = 0; j < i; j++)
            if (key_eq((const Pubkey *)(members + 32 * i), (const Pubkey *)(members + 32 * j)))
                return ERR_BAD_MEMBERS;
    const u8 *rest = members + 32 * n;
    u64 duration = rd64(rest);
    if (duration == 0)
        return ERR_BAD_INSTRUCTION;
    u8 bump = rest[40];
    u8 channel_id[32];
    SignerSeed parts[4] = {
        {CHANNEL_ID_DOMAIN, sizeof(CHANNEL_ID_DOMAIN)},
        {in->program_id->x, 32},
        {in->data + 1, 1 + 32 * n}, /* n | members */
        {rest, 40},                 /* challenge_duration | nonce */
    };
    sol_sha256(parts, 4, channel_id);
    SignerSeed seeds[3] = {{SEED_GROUP, sizeof(SEED_GROUP)}, {channel_id, 32}, {&bump, 1}};
    Pubkey expected;
    if (sol_create_program_address(seeds, 3, in->program_id, &expected) != 0 ||
        !key_eq(&expected, acc->key))
        return ERR_BAD_PDA;
    if (key_eq(acc->owner, in->program_id))
        return ERR_WRONG_GROUP_ACCOUNT; /* already open */
    SignerSeeds signer = {seeds, 3};
    u8 *d = heap()->scratch;
    wr64(d + 4, rd64(rest + 41));
    wr64(d + 12, sizeof(Group));
    if ((err = create_pda(in, payer, acc, system, &signer)))
        return err;
    Group *g = (Group *)acc->data;
    sol_memcpy_(g->magic, GROUP_MAGIC, 8);
    sol_memcpy_(g->channel_id, channel_id, 32);
    g->challenge_duration = duration;
    g->status = ST_OPEN;
    g->bump = bump;
    g->n = (u8)n;
    sol_memcpy_(g->members, members, 32 * n);
    event_start(EV_OPENED, g);
    emit(33);
    return 0;
}

/* ---- DEPOSIT: [1][member u8][amount u64]
 * accounts: funder (signer, writable), group (writable), system program.
 * Anyone may fund a member (the money can only go back to that member); only while open. */
NOINLINE static u64 ix_deposit(const Input *in) {
    if (in->data_len != 1 + 1 + 8)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 3)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *funder = &in->accounts[0], *acc = &in->accounts[1], *system = &in->accounts[2];
    Group *g;
    u64 err = load_group(in, acc, &g);
    if (err || (err = check_system_program(system)))
        return err;
    u8 who = in->data[1];
    u64 amount = rd64(in->data + 2);
    if (who >= g->n || amount == 0)
        return ERR_BAD_INSTRUCTION;
    if (g->status != ST_OPEN)
        return ERR_BAD_STATUS;
    if (!funder->is_signer)
        return ERR_NOT_SIGNER;
    if (g->deposits[who] + amount < amount)
        return ERR_OVERFLOW;
    u8 *d = heap()->scratch;
    *(u32 *)d = 2; /* Transfer */
    wr64(d + 4, amount);
    AccountMeta metas[2] = {{funder->key, 1, 1}, {acc->key, 1, 0}};
    Instruction ix = {system->key, metas, 2, d, 12};
    AccountInfo *infos = heap()->cpi;
    infos[0] = *funder;
    infos[1] = *acc;
    if ((err = sol_invoke_signed_c(&ix, infos, 2, NULL, 0)))
        return err;
    g->deposits[who] += amount;
    u8 *e = event_start(EV_FUNDED, g);
    e[0] = who;
    wr64(e + 1, amount);
    emit(33 + 9);
    return 0;
}

/* Reads the Ed25519 instruction at `ed_index`: every entry self-contained, all over one
 * message, each signer a distinct member; parses the message into heap()->sig. */
NOINLINE static u64 load_signatures(const Input *in, const AccountInfo *sysvar, u8 ed_index,
                                    const Group *g) {
    if (!key_eq(sysvar->key, &INSTRUCTIONS_SYSVAR_ID))
        return ERR_BAD_SYSVAR;
    const u8 *sv = sysvar->data;
    u64 sv_len = sysvar->data_len;
    if (sv_len < 2)
        return ERR_BAD_SYSVAR;
    if (ed_index >= rd16(sv))
        return ERR_MISSING_SIGNATURE;
    u64 off = rd16(sv + 2 + 2 * (u64)ed_index);
    if (off + 2 > sv_len)
        return ERR_BAD_SYSVAR;
    off += 2 + 33 * (u64)rd16(sv + off);
    if (off + 34 > sv_len)
        return ERR_BAD_SYSVAR;
    if (!key_eq((const Pubkey *)(sv + off), &ED25519_PROGRAM_ID))
        return ERR_MISSING_SIGNATURE;
    u64 ed_len = rd16(sv + off + 32);
    const u8 *ed = sv + off + 34;
    if (off + 34 + ed_len > sv_len || ed_len < ED25519_OFFSETS_START)
        return ERR_BAD_SYSVAR;
    u64 count = ed[0];
    if (count == 0 || count > g->n || ed_len < ED25519_OFFSETS_START + count * ED25519_OFFSETS_LEN)
        return ERR_BAD_SIGNATURE_IX;
    Signed *s = &heap()->sig;
    s->mask = 0;
    s->msg = NULL;
    for (u64 i = 0; i < count; i++) {
        const u8 *o = ed + ED25519_OFFSETS_START + ED25519_OFFSETS_LEN * i;
        u64 pk_off = rd16(o + 4), m_off = rd16(o + 8), m_len = rd16(o + 10);
        if (rd16(o + 2) != 0xFFFF || rd16(o + 6) != 0xFFFF || rd16(o + 12) != 0xFFFF)
            return ERR_BAD_SIGNATURE_IX;
        if (pk_off + 32 > ed_len || m_off + m_len > ed_len)
            return ERR_BAD_SIGNATURE_IX;
        u64 who = MAX_MEMBERS;
        for (u64 m = 0; m < g->n; m++)
            if (key_eq((const Pubkey *)(ed + pk_off), &g->members[m]))
                who = m;
        if (who == MAX_MEMBERS)
            return ERR_BAD_SIGNER;
        if (s->mask & (1UL << who))
            return ERR_DUPLICATE_SIGNER;
        s->mask |= 1UL << who;
        if (i == 0) {
            s->msg = ed + m_off;
            s->msg_len = m_len;
        } else if (m_len != s->msg_len || !mem_eq(s->msg, ed + m_off, m_len)) {
            return ERR_BAD_SIGNATURE_IX;
        }
    }
    const u8 *msg = s->msg;
    if (s->msg_len != MSG_HEADER_LEN + 8 * (u64)g->n || !mem_eq(msg, MSG_MAGIC, 8))
        return ERR_BAD_MESSAGE;
    if (!mem_eq(msg + 8, g->channel_id, 32))
        return ERR_WRONG_CHANNEL;
    s->version = rd64(msg + 40);
    s->final_flag = msg[48];
    if (s->final_flag > 1 || msg[49] != g->n)
        return ERR_BAD_MESSAGE;
    u64 total = 0;
    for (u64 m = 0; m < g->n; m++) {
        s->balances[m] = rd64(msg + MSG_HEADER_LEN + 8 * m);
        if (total + s->balances[m] < total)
            return ERR_OVERFLOW;
        total += s->balances[m];
    }
    return 0;
}

/* Adds this transaction's signatures to the message's signature record (created on first
 * use, rent from the payer); sets heap()->sig.mask to everything collected so far.
 * accounts[2..4]: payer (signer, writable), record PDA (writable), system program. */
NOINLINE static u64 collect(const Input *in, const Group *g, u8 bump) {
    if (in->n_accounts < 5)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *payer = &in->accounts[2], *rec = &in->accounts[3], *system = &in->accounts[4];
    Signed *s = &heap()->sig;
    u8 hash[32];
    SignerSeed m = {s->msg, s->msg_len};
    sol_sha256(&m, 1, hash);
    SignerSeed seeds[4] = {
        {SEED_SIGS, sizeof(SEED_SIGS)}, {g->channel_id, 32}, {hash, 32}, {&bump, 1}};
    Pubkey expected;
    if (sol_create_program_address(seeds, 4, in->program_id, &expected) != 0 ||
        !key_eq(&expected, rec->key))
        return ERR_BAD_PDA;
    if (!rec->is_writable)
        return ERR_NOT_WRITABLE;
    u64 err;
    if (!key_eq(rec->owner, in->program_id)) {
        if ((err = check_system_program(system)))
            return err;
        if (!payer->is_signer)
            return ERR_NOT_SIGNER;
        SignerSeeds signer = {seeds, 4};
        u8 *d = heap()->scratch;
        wr64(d + 4, 1002240); /* rent exemption of 16 bytes of data */
        wr64(d + 12, sizeof(SigRecord));
        if ((err = create_pda(in, payer, rec, system, &signer)))
            return err;
        sol_memcpy_(rec->data, SIGS_MAGIC, 8);
    }
    if (rec->data_len < sizeof(SigRecord) || !mem_eq(rec->data, SIGS_MAGIC, 8))
        return ERR_BAD_PDA;
    SigRecord *r = (SigRecord *)rec->data;
    r->mask |= s->mask;
    s->mask = r->mask;
    return 0;
}

/* ---- REGISTER: [2][ed25519 instruction index u8][record bump u8]
 * accounts: group (writable), Instructions sysvar; and, when the Ed25519 instruction does
 * not carry every member's signature: payer (signer, writable), signature record PDA
 * (writable), system program. */
NOINLINE static u64 ix_register(const Input *in) {
    if (in->data_len != 3)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 2)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Group *g;
    u64 err = load_group(in, &in->accounts[0], &g);
    if (err || (err = load_signatures(in, &in->accounts[1], in->data[1], g)))
        return err;
    if (g->status == ST_CONCLUDED)
        return ERR_BAD_STATUS;
    Signed *s = &heap()->sig;
    if (s->mask != full_mask(g) && (err = collect(in, g, in->data[2])))
        return err;
    i64 now = now_unix();
    if (g->status == ST_DISPUTE) {
        if (now >= g->deadline)
            return ERR_CHALLENGE_PERIOD_OVER;
        if (s->version <= g->version)
            return ERR_STALE_VERSION;
    }
    if (s->mask != full_mask(g)) {
        u8 *e = event_start(EV_SIGNED, g);
        wr64(e, s->version);
        wr64(e + 8, s->mask);
        emit(33 + 16);
        return 0;
    }
    if (g->status == ST_OPEN) {
        g->status = ST_DISPUTE;
        g->deadline = now + (i64)g->challenge_duration;
    }
    if (s->final_flag)
        g->deadline = now;
    g->version = s->version;
    g->final_flag = s->final_flag;
    sol_memcpy_(g->balances, s->balances, 8 * (u64)g->n);
    u8 *e = event_start(EV_REGISTERED, g);
    wr64(e, g->version);
    wr64(e + 8, (u64)g->deadline);
    emit(33 + 16);
    return 0;
}

/* ---- CONCLUDE: [3]; accounts: group (writable). After the challenge period. */
NOINLINE static u64 ix_conclude(const Input *in) {
    if (in->n_accounts < 1)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    Group *g;
    u64 err = load_group(in, &in->accounts[0], &g);
    if (err)
        return err;
    if (g->status != ST_DISPUTE)
        return ERR_BAD_STATUS;
    if (now_unix() < g->deadline)
        return ERR_CHALLENGE_PERIOD_ACTIVE;
    u64 total = 0, deposited = 0;
    for (u64 m = 0; m < g->n; m++) {
        total += g->balances[m]; /* no overflow: checked when recorded */
        if (deposited + g->deposits[m] < deposited)
            return ERR_OVERFLOW;
        deposited += g->deposits[m];
    }
    for (u64 m = 0; m < g->n; m++)
        g->payout[m] = total == deposited ? g->balances[m] : g->deposits[m];
    g->status = ST_CONCLUDED;
    u8 *e = event_start(EV_CONCLUDED, g);
    wr64(e, g->version);
    emit(33 + 8);
    return 0;
}

/* ---- WITHDRAW: [4][member u8]; accounts: group (writable), the member (writable). */
NOINLINE static u64 ix_withdraw(const Input *in) {
    if (in->data_len != 2)
        return ERR_BAD_INSTRUCTION;
    if (in->n_accounts < 2)
        return ERR_NOT_ENOUGH_ACCOUNTS;
    AccountInfo *acc = &in->accounts[0], *to = &in->accounts[1];
    Group *g;
    u64 err = load_group(in, acc, &g);
    if (err)
        return err;
    u8 who = in->data[1];
    if (who >= g->n)
        return ERR_BAD_INSTRUCTION;
    if (g->status != ST_CONCLUDED)
        return ERR_BAD_STATUS;
    if (g->withdrawn & (1UL << who))
        return ERR_ALREADY_WITHDRAWN;
    if (!key_eq(to->key, &g->members[who]))
        return ERR_WRONG_MEMBER_ACCOUNT;
    if (!to->is_writable)
        return ERR_NOT_WRITABLE;
    u64 amount = g->payout[who];
    if (*acc->lamports < amount || *to->lamports + amount < amount)
        return ERR_OVERFLOW;
    *acc->lamports -= amount;
    *to->lamports += amount;
    g->withdrawn |= 1UL << who;
    u8 *e = event_start(EV_WITHDRAWN, g);
    e[0] = who;
    wr64(e + 1, amount);
    emit(33 + 9);
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
    case IX_REGISTER:
        return ix_register(&in);
    case IX_CONCLUDE:
        return ix_conclude(&in);
    case IX_WITHDRAW:
        return ix_withdraw(&in);
    default:
        return ERR_BAD_INSTRUCTION;
    }
}
