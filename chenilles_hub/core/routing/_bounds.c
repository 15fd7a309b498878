/*
 * The router's bound pass, compiled: the payer's least value-to-add to every state, as
 * search.py's A* needs it, settling as few states as the query allows.
 *
 * Weights are bounds.edge_weights, computed for every CSR entry in one sequential pass
 * before the search, with the same float operations in the same order (built with
 * -ffp-contract=off: no fused multiply-add), so a state the search settles gets the very
 * distance scipy's Dijkstra over edge_weights gives it.
 *
 * With a target (the payee's state), the bound is made in two phases (docs/routing.md,
 * "The bound from both ends"):
 *
 * 1. A bidirectional Dijkstra, from the payer's heads forwards and from the target
 *    backwards, each step on the side with the smaller frontier, until the tops' sum
 *    reaches the best meeting found, mu = d(P, t). It settles a ball of radius rho_f
 *    around the payer (exact forward distances) and one of radius rho_b around the target
 *    (exact distances to it). rho_f + rho_b <= d(P, t): while mu > d(P, t), a shortest
 *    path has an edge from a state settled forwards to one not settled backwards, whence
 *    top_f + top_b <= d(P, t); once mu = d(P, t), no pop happens with top_f + top_b >= mu.
 * 2. pi(x) = min(d(x, t), rho_b) is a consistent lower bound on the distance to the target
 *    (the backward ball's exact distances, truncated at its radius). The forward search
 *    goes on as an A* with pi (its frontier re-keyed) until its key d(P, x) + pi(x) passes
 *    K = stretch * mu.
 *
 * The bound written is h(x) = d(P, x) on the states settled forwards and K - pi(x)
 * elsewhere. It is admissible (a state not settled has d(P, x) + pi(x) >= K) and
 * consistent along every edge u -> v: both settled, by the distances; both not, by the
 * consistency of pi; u not and v settled, since d(P, v) + pi(v) <= K (phase 2's stop rule,
 * or rho_f + rho_b <= mu <= K for phase 1); u settled and v not, since v's key after u's
 * relaxation exceeds K. So the A* stays exact for any stretch >= 1 (and even where mu were
 * only an upper bound). It loses nothing when K >= C - v0, the optimum's value-to-add: a
 * label at a state x not settled then has f >= v0 + d(x, t) + K - pi(x) >= v0 + K.
 *
 * Without a target (-1), or when the target is at distance 0 (K would be 0: the bound
 * would tell the A* nothing), one forward Dijkstra over every state: the distances, as
 * scipy gives them (a row kept for many payees, bound_cache.py).
 *
 * No numpy headers: arrays come in through the buffer protocol, formats checked. The GIL
 * is released during the search.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>

#define SLACK 1e-9
#define FWD 0
#define BWD 1

typedef struct {
    double key;
    int32_t state;
} Entry;

typedef struct {
    Entry *items;
    Py_ssize_t size, capacity;
} Heap;

/* What the two searches know of a state, together: one cache line per visit. */
typedef struct {
    double dist[2]; /* [FWD] from the heads, [BWD] to the target; inf: not reached */
    unsigned char settled[2];
} State;

/* A push past the capacity (which a valid CSR never needs: one push per arc relaxed, each
 * arc relaxed once) is refused; the caller sees the heap did not grow. */
static int heap_push(Heap *heap, double key, int32_t state) {
    if (heap->size >= heap->capacity) return -1;
    Entry *items = heap->items;
    Py_ssize_t i = heap->size++;
    while (i > 0) {
        Py_ssize_t parent = (i - 1) >> 1;
        if (items[parent].key <= key) break;
        items[i] = items[parent];
        i = parent;
    }
    items[i].key = key;
    items[i].state = state;
    return 0;
}

static Entry heap_pop(Heap *heap) {
    Entry *items = heap->items;
    Entry top = items[0];
    Py_ssize_t n = --heap->size;
    if (n == 0) return top;
    Entry last = items[n];
    Py_ssize_t i = 0;
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && items[child + 1].key < items[child].key) child++;
        if (last.key <= items[child].key) break;
        items[i] = items[child];
        i = child;
    }
    items[i] = last;
    return top;
}

/* The per-entry arrays of bounds.edge_weights and the query's value and time. A channel
 * entry names its asset (code >= 0), whose price and rounding of the payment are the same
 * for every entry of that asset; a rate's entry (code -1) has a loss and an expiry. */
typedef struct {
    const int32_t *code;
    const double *base, *ppm, *loss, *cap_value, *valid_until, *asset_price;
    double *x_min; /* per asset: floor(v0 / price * (1 - SLACK)) */
    Py_ssize_t n_assets;
    double v0, cut, now;
    int check_now;
} Weights;

/* bounds.edge_weights for entry k, of asset a (-1: a rate), operation for operation; inf
 * where it is cut. There, a channel entry's weight is ((base + ceil(x_min * ppm *
 * (1 - 1e-12))) * price * 1.0 + v0 * 0.0) * (1 - SLACK) and a rate's ((0 * 1 * 0) +
 * v0 * loss) * (1 - SLACK): the terms dropped here are an exact 1.0 factor and an exact
 * +0.0 to a non-negative value. */
static inline double weight(const Weights *w, Py_ssize_t k, int32_t a) {
    if (w->cap_value[k] < w->cut) return INFINITY;
    if (a >= 0) {
        double fee = w->base[k] + ceil(w->x_min[a] * w->ppm[k] * (1 - 1e-12));
        return fee * w->asset_price[a] * (1 - SLACK);
    }
    if (w->check_now && w->valid_until[k] < w->now) return INFINITY;
    return w->v0 * w->loss[k] * (1 - SLACK);
}

/* One direction of the search: its CSR (the backward one's entries name the forward
 * entry whose weight they share; NULL for the forward one) and its heap. */
typedef struct {
    const int32_t *indptr, *indices, *entry;
    Heap heap;
    Py_ssize_t settled;
} Side;

typedef struct {
    Py_ssize_t n_states, n_heads, nnz;
    const int32_t *heads;
    int32_t target;
    double stretch;
    Weights w;
    double *wt; /* every entry's weight, computed up front in one sequential pass */
    State *st;
    double *out; /* the bound, written at the end */
    Side side[2];
    double rho_b;   /* phase 2: the backward ball's radius; pi(x) = min(d(x, t), rho_b) */
    int keyed;      /* phase 2: forward keys are d + pi */
    int bad_index;
} Search;

static inline double pi(const Search *s, const State *x) {
    return x->settled[BWD] ? x->dist[BWD] : s->rho_b;
}

/* The top of one side's heap after dropping stale entries, or inf if it is empty. */
static double top_key(Search *s, int d) {
    Heap *heap = &s->side[d].heap;
    while (heap->size > 0) {
        Entry top = heap->items[0];
        const State *x = &s->st[top.state];
        double key = s->keyed && d == FWD ? x->dist[FWD] + pi(s, x) : x->dist[d];
        if (!x->settled[d] && top.key <= key) return top.key;
        heap_pop(heap);
    }
    return INFINITY;
}

/* Settle the top of side d (top_key said it is current) and relax its arcs; a relaxed
 * arc that reaches a state the other side has reached is a meeting (mu). Every index read
 * is checked here, where it is used: the arrays were validated with the GIL held, but
 * another thread could write to them while this one searches without it. */
static void settle(Search *s, int d, double *mu) {
    Side *g = &s->side[d];
    Entry top = heap_pop(&g->heap);
    int32_t u = top.state;
    double du = s->st[u].dist[d];
    s->st[u].settled[d] = 1;
    g->settled++;
    int32_t lo = g->indptr[u], hi = g->indptr[u + 1];
    if (lo < 0 || hi < lo || hi > s->nnz) {
        s->bad_index = 1;
        return;
    }
    for (int32_t j = lo; j < hi; j++) {
        int32_t v = g->indices[j], k = g->entry ? g->entry[j] : j;
        if ((uint32_t)v >= (uint32_t)s->n_states || (uint32_t)k >= (uint32_t)s->nnz) {
            s->bad_index = 1;
            return;
        }
        State *x = &s->st[v];
        if (x->settled[d]) continue;
        double w = s->wt[k];
        if (w == INFINITY) continue;
        double dv = du + w;
        if (dv < x->dist[d]) {
            x->dist[d] = dv;
            if (heap_push(&g->heap, s->keyed ? dv + pi(s, x) : dv, v) < 0) {
                s->bad_index = 1;
                return;
            }
        }
        if (dv + x->dist[!d] < *mu) *mu = dv + x->dist[!d];
    }
}

/* The search itself, without the GIL. Writes the bound into s->out. */
static void run(Search *s) {
    Py_ssize_t n = s->n_states;
    for (Py_ssize_t a = 0; a < s->w.n_assets; a++)
        s->w.x_min[a] = floor(s->w.v0 / s->w.asset_price[a] * (1 - SLACK));
    for (Py_ssize_t k = 0; k < s->nnz; k++) {
        int32_t a = s->w.code[k];
        if (a < -1 || a >= s->w.n_assets) {
            s->bad_index = 1;
            return;
        }
        s->wt[k] = weight(&s->w, k, a);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        s->st[i].dist[FWD] = s->st[i].dist[BWD] = INFINITY;
        s->st[i].settled[FWD] = s->st[i].settled[BWD] = 0;
    }
    for (Py_ssize_t i = 0; i < s->n_heads; i++) {
        State *x = &s->st[s->heads[i]];
        if (x->dist[FWD] != 0.0) {
            x->dist[FWD] = 0.0;
            heap_push(&s->side[FWD].heap, 0.0, s->heads[i]);
        }
    }
    double mu = INFINITY;
    int32_t t = s->target;
    if (t >= 0) {
        /* Phase 1: from both ends, on the smaller frontier, until the tops' sum reaches mu. */
        if (s->st[t].dist[FWD] == 0.0) mu = 0.0;
        s->st[t].dist[BWD] = 0.0;
        heap_push(&s->side[BWD].heap, 0.0, t);
        while (!s->bad_index) {
            double top_f = top_key(s, FWD), top_b = top_key(s, BWD);
            if (top_f + top_b >= mu) break; /* also when either side ran dry */
            int d = s->side[FWD].heap.size <= s->side[BWD].heap.size ? FWD : BWD;
            if (d == BWD) s->rho_b = top_b;
            settle(s, d, &mu);
        }
        if (s->bad_index) return;
        if (mu == INFINITY) { /* no path to the target under these weights */
            for (Py_ssize_t i = 0; i < n; i++) s->out[i] = INFINITY;
            return;
        }
    }
    if (mu == 0.0 || t < 0) {
        /* No target (a row for many payees), or one at distance 0 (the payer's neighbour,
         * or past free edges), where a radius of stretch * 0 would tell the A* nothing:
         * the forward Dijkstra goes on over every state, and the bound is the distances. */
        while (!s->bad_index && top_key(s, FWD) < INFINITY) settle(s, FWD, &mu);
        for (Py_ssize_t i = 0; i < n; i++) s->out[i] = s->st[i].dist[FWD];
        return;
    }
    /* Phase 2: an A* forwards, keys d + pi (the frontier re-keyed), up to K (at most the
     * largest double: K - pi stays finite and K >= mu). */
    double radius = s->stretch * mu, ignored = INFINITY;
    if (radius > DBL_MAX) radius = DBL_MAX;
    Heap *heap = &s->side[FWD].heap;
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < heap->size; i++) {
        Entry e = heap->items[i];
        const State *x = &s->st[e.state];
        if (x->settled[FWD] || e.key > x->dist[FWD]) continue;
        e.key = x->dist[FWD] + pi(s, x);
        heap->items[kept++] = e;
    }
    heap->size = 0;
    for (Py_ssize_t i = 0; i < kept; i++) heap_push(heap, heap->items[i].key, heap->items[i].state);
    s->keyed = 1;
    for (;;) {
        double key = top_key(s, FWD); /* inf once the heap is empty */
        if (s->bad_index || key == INFINITY || key > radius) break;
        settle(s, FWD, &ignored);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const State *x = &s->st[i];
        double h = radius - pi(s, x);
        s->out[i] = x->settled[FWD] ? x->dist[FWD] : h > 0.0 ? h : 0.0;
    }
}

/* A contiguous buffer of `count` items of one format ("i": int32, "d": float64). */
static int check(Py_buffer *buf, const char *name, char format, Py_ssize_t count) {
    Py_ssize_t itemsize = format == 'i' ? 4 : 8;
    const char *f = buf->format ? buf->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    if (buf->itemsize != itemsize || f[0] != format || f[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s: expected an array of %s", name,
                     format == 'i' ? "int32" : "float64");
        return -1;
    }
    if (count >= 0 && buf->len / itemsize != count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items, got %zd", name, count,
                     buf->len / itemsize);
        return -1;
    }
    return 0;
}

#define N_BUFFERS 13
enum {
    INDPTR, INDICES, REV_INDPTR, REV_INDICES, REV_ENTRY, CODE, BASE, PPM, LOSS, CAP_VALUE,
    VALID_UNTIL, ASSET_PRICE, OUT
};
static const char *names[N_BUFFERS] = {
    "indptr", "indices", "rev_indptr", "rev_indices", "rev_entry", "code", "base", "ppm",
    "loss",   "cap_value", "valid_until", "asset_price", "out"};

PyDoc_STRVAR(bounds_doc,
"bounds(indptr, indices, rev_indptr, rev_indices, rev_entry, code, base, ppm, loss,\n"
"       cap_value, valid_until, asset_price, heads, v0, now, target, stretch, out)\n"
"    -> (settled forwards, settled backwards)\n\n"
"Writes into ``out`` (float64, one per state) the A* bound of the payer whose first hops\n"
"lead to ``heads``, over bounds.edge_weights at value ``v0`` (quotes with valid_until <\n"
"now cut, unless ``now`` is NaN). ``target`` -1: the exact distances to every state.\n"
"Otherwise the two-phase bound of this module's comment, exact for the A* at any\n"
"``stretch`` >= 1; inf everywhere if the target cannot be reached.");

static PyObject *bounds(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj[N_BUFFERS], *heads_obj;
    Py_buffer b[N_BUFFERS] = {{0}};
    Search s = {0};
    double v0, now, stretch;
    int target;
    PyObject *result = NULL;
    int32_t *heads = NULL;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOddidO", &obj[0], &obj[1], &obj[2], &obj[3],
                          &obj[4], &obj[5], &obj[6], &obj[7], &obj[8], &obj[9], &obj[10],
                          &obj[11], &heads_obj, &v0, &now, &target, &stretch, &obj[OUT]))
        return NULL;
    for (int k = 0; k < N_BUFFERS; k++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (k == OUT ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(obj[k], &b[k], flags) < 0) goto finally;
    }
    Py_ssize_t n_states = b[OUT].len / 8, nnz = b[INDICES].len / 4;
    if (check(&b[OUT], names[OUT], 'd', -1) < 0 || check(&b[ASSET_PRICE], names[ASSET_PRICE], 'd', -1) < 0)
        goto finally;
    for (int k = INDPTR; k <= CODE; k++) {
        Py_ssize_t count = (k == INDPTR || k == REV_INDPTR) ? n_states + 1 : nnz;
        if (check(&b[k], names[k], 'i', count) < 0) goto finally;
    }
    for (int k = BASE; k <= VALID_UNTIL; k++)
        if (check(&b[k], names[k], 'd', nnz) < 0) goto finally;
    Py_ssize_t n_assets = b[ASSET_PRICE].len / 8;
    const int32_t *indptr = b[INDPTR].buf, *rev_indptr = b[REV_INDPTR].buf;
    const int32_t *rev_entry = b[REV_ENTRY].buf, *code = b[CODE].buf;
    for (Py_ssize_t i = 0; i < n_states; i++) {
        if (indptr[i] < 0 || indptr[i] > indptr[i + 1] || rev_indptr[i] < 0 ||
            rev_indptr[i] > rev_indptr[i + 1]) {
            PyErr_SetString(PyExc_ValueError, "indptr: not a CSR over these entries");
            goto finally;
        }
    }
    if (indptr[n_states] != nnz || rev_indptr[n_states] != nnz) {
        PyErr_SetString(PyExc_ValueError, "indptr: not a CSR over these entries");
        goto finally;
    }
    for (Py_ssize_t j = 0; j < nnz; j++) {
        if ((uint32_t)rev_entry[j] >= (uint32_t)nnz || code[j] < -1 || code[j] >= n_assets) {
            PyErr_SetString(PyExc_ValueError, "rev_entry or code: out of range");
            goto finally;
        }
    }
    if (target < -1 || target >= n_states) {
        PyErr_SetString(PyExc_ValueError, "target: not a state");
        goto finally;
    }
    if (!(v0 > 0) || !(stretch >= 1) || isinf(stretch)) {
        PyErr_SetString(PyExc_ValueError, "v0 must be positive, stretch finite and >= 1");
        goto finally;
    }
    /* A tuple of our own: converting an item runs the caller's code (__index__), which must
     * not be able to change the sequence under us. */
    PyObject *seq = PySequence_Tuple(heads_obj);
    if (seq == NULL) goto finally;
    Py_ssize_t n_heads = PyTuple_GET_SIZE(seq);
    heads = PyMem_Malloc(sizeof(int32_t) * (size_t)(n_heads + 1));
    if (heads == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        goto finally;
    }
    for (Py_ssize_t i = 0; i < n_heads; i++) {
        long h = PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
        if (h == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            goto finally;
        }
        if (h < 0 || h >= n_states) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "heads: not a state");
            goto finally;
        }
        heads[i] = (int32_t)h;
    }
    Py_DECREF(seq);

    s.n_states = n_states;
    s.n_heads = n_heads;
    s.nnz = nnz;
    s.side[FWD].indptr = indptr;
    s.side[FWD].indices = b[INDICES].buf;
    s.side[BWD].indptr = rev_indptr;
    s.side[BWD].indices = b[REV_INDICES].buf;
    s.side[BWD].entry = rev_entry;
    s.heads = heads;
    s.target = target;
    s.stretch = stretch;
    s.w = (Weights){code,
                    b[BASE].buf,
                    b[PPM].buf,
                    b[LOSS].buf,
                    b[CAP_VALUE].buf,
                    b[VALID_UNTIL].buf,
                    b[ASSET_PRICE].buf,
                    NULL,
                    n_assets,
                    v0,
                    v0 * (1 - SLACK),
                    now,
                    !isnan(now)};
    s.out = b[OUT].buf;
    /* Every push follows a distance that fell: at most one per entry, plus the seeds. */
    s.st = PyMem_RawMalloc(sizeof(State) * (size_t)(n_states + 1));
    s.wt = PyMem_RawMalloc(sizeof(double) * (size_t)(nnz + 1));
    s.w.x_min = PyMem_RawMalloc(sizeof(double) * (size_t)(n_assets + 1));
    s.side[FWD].heap.capacity = nnz + n_heads + 1;
    s.side[BWD].heap.capacity = nnz + 1;
    s.side[FWD].heap.items = PyMem_RawMalloc(sizeof(Entry) * (size_t)s.side[FWD].heap.capacity);
    s.side[BWD].heap.items = PyMem_RawMalloc(sizeof(Entry) * (size_t)s.side[BWD].heap.capacity);
    if (s.st == NULL || s.wt == NULL || s.w.x_min == NULL || s.side[FWD].heap.items == NULL ||
        s.side[BWD].heap.items == NULL) {
        PyErr_NoMemory();
        goto finally;
    }
    Py_BEGIN_ALLOW_THREADS
    run(&s);
    Py_END_ALLOW_THREADS
    if (s.bad_index) {
        PyErr_SetString(PyExc_ValueError,
                        "the graph's arrays are inconsistent (an index out of range)");
        goto finally;
    }
    result = Py_BuildValue("nn", s.side[FWD].settled, s.side[BWD].settled);
finally:
    for (int k = 0; k < N_BUFFERS; k++)
        if (b[k].obj != NULL) PyBuffer_Release(&b[k]);
    PyMem_Free(heads);
    PyMem_RawFree(s.st);
    PyMem_RawFree(s.wt);
    PyMem_RawFree(s.w.x_min);
    PyMem_RawFree(s.side[FWD].heap.items);
    PyMem_RawFree(s.side[BWD].heap.items);
    return result;
}

static PyMethodDef methods[] = {
    {"bounds", bounds, METH_VARARGS, bounds_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_bounds",
    .m_doc = "The router's bound pass, compiled (see bounds.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__bounds(void) { return PyModule_Create(&module); }
