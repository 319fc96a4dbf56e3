// The rollout info flattener (see info_flattener.h for why this code reads Python
// objects, and what it leaves to Python).
//
// Speed comes from three things, measured on the 1,024 x 50-leaf benchmark:
// - Key paths are interned in a trie of nodes, and each node remembers the order of
//   the keys of the last dict seen there: vectorized envs return dicts of one shape, so
//   the key at position j is nearly always the one seen at j last time, and matching
//   it costs a pointer (or a cached hash and a short compare) instead of building the
//   "a/b/c" string and looking it up.
// - Values go straight to their final place: each key fills a chunk of one buffer
//   sized from what it held in the previous call, so a key's values of a call are
//   usually one contiguous segment, and the buffer becomes the numpy array the numba
//   kernel reads (no concatenation, no copy).
// - Nothing per leaf allocates or calls Python code for floats, ints, bools, str,
//   None, dicts, numpy arrays and lists of numbers. Everything else is classified once
//   per type by a Python callback.
//
// Safety: the walk holds the GIL and runs Python code only through the callbacks and
// the conversions of odd leaves and keys; across those it holds references to what it
// reads, and afterwards checks that no dict it is walking changed size (a dict changed
// under it would make PyDict_Next skip or repeat entries). An info that is cyclic,
// nested too deep, too large, or changed during the call is undone and reported, and
// the walk goes on with the next info.
#include "info_flattener.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "fusedstats/stats.h"  // load_f16: the one half -> float conversion of the project

namespace fusedstats {
namespace cpython {

namespace {

constexpr uint32_t kNoNode = UINT32_MAX;
// Deeper than any info an env produces (3-5 levels), shallow enough that a dict nested
// ~1,000 deep (which would break Python's own recursion) is refused, not walked.
constexpr size_t kMaxDepth = 512;
// Dict entries one info may have (262,144), shared sub-dicts counted each time: a guard
// against a DAG of shared dicts whose walk would take forever (and intern a new path at
// every entry), far above real infos (~100 entries).
constexpr int64_t kMaxEntriesPerInfo = int64_t{1} << 18;
constexpr int64_t kMinChunk = 8;  // values: the first chunk of a key never seen before
constexpr size_t kMaxCachedTypes = 1024;
constexpr int kMaxDims = 64;  // NPY_MAXDIMS of numpy 2 (32 before)

// numpy type numbers (stable across numpy versions; numpy/ndarraytypes.h).
enum NpyType : int {
  kNpyBool = 0, kNpyByte, kNpyUByte, kNpyShort, kNpyUShort, kNpyInt, kNpyUInt, kNpyLong,
  kNpyULong, kNpyLongLong, kNpyULongLong, kNpyFloat, kNpyDouble, kNpyLongDouble,
  kNpyHalf = 23,
};
constexpr int kNpyCContiguous = 0x0001;

// Reasons an info is not accumulated (RolloutStats.rejected counts them by these words).
constexpr const char* kCycle = "cycle";
constexpr const char* kTooDeep = "too deep";
constexpr const char* kTooLarge = "too large";
constexpr const char* kChanged = "changed during the call";
constexpr const char* kBadKey = "bad key";
constexpr const char* kBadMapping = "bad mapping";

// Two exact str objects equal? Keys built per info (f"stat_{j}") are new objects each
// time, so this runs for most keys: inline for ASCII, str's own compare otherwise.
inline bool same_str(PyObject* a, PyObject* b) {
  if (a == b) return true;
  const Py_ssize_t n = PyUnicode_GET_LENGTH(a);
  if (n != PyUnicode_GET_LENGTH(b)) return false;
  if (PyUnicode_IS_COMPACT_ASCII(a) && PyUnicode_IS_COMPACT_ASCII(b)) {
    // A word at a time, the last word overlapping the one before (a byte loop measured
    // 14% of the walk); never a byte past the end.
    const auto* x = static_cast<const char*>(PyUnicode_DATA(a));
    const auto* y = static_cast<const char*>(PyUnicode_DATA(b));
    if (n >= 8) {
      uint64_t wx, wy;
      for (Py_ssize_t i = 0; i + 8 < n; i += 8) {
        std::memcpy(&wx, x + i, 8);
        std::memcpy(&wy, y + i, 8);
        if (wx != wy) return false;
      }
      std::memcpy(&wx, x + n - 8, 8);
      std::memcpy(&wy, y + n - 8, 8);
      return wx == wy;
    }
    if (n >= 4) {
      uint32_t hx, hy, tx, ty;
      std::memcpy(&hx, x, 4);
      std::memcpy(&hy, y, 4);
      std::memcpy(&tx, x + n - 4, 4);
      std::memcpy(&ty, y + n - 4, 4);
      return hx == hy && tx == ty;
    }
    for (Py_ssize_t i = 0; i < n; ++i)
      if (x[i] != y[i]) return false;
    return true;
  }
  return PyUnicode_Compare(a, b) == 0;
}

// An exact str's hash: the one cached in the object (dict keys always have it).
inline Py_hash_t str_hash(PyObject* s) {
#if PY_VERSION_HEX < 0x030E0000
  const Py_hash_t h = reinterpret_cast<PyASCIIObject*>(s)->hash;
  if (h != -1) return h;
#endif
  return PyObject_Hash(s);
}

uint64_t slot_hash(uint32_t parent, Py_hash_t hash) {
  uint64_t x = static_cast<uint64_t>(hash) * 0x9E3779B97F4A7C15ull;
  x ^= (static_cast<uint64_t>(parent) + 1) * 0xC2B2AE3D27D4EB4Full;
  return x ^ (x >> 31);
}

bool native_byte_order(char byteorder) {
  const uint16_t probe = 1;
  const bool little = *reinterpret_cast<const uint8_t*>(&probe) == 1;
  return byteorder == '=' || byteorder == '|' || byteorder == (little ? '<' : '>');
}

template <class T>
double load_as_double(const char* p) {
  T x;
  std::memcpy(&x, p, sizeof x);
  return static_cast<double>(x);
}
double load_bool(const char* p) { return *p != 0 ? 1.0 : 0.0; }
double load_half(const char* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return static_cast<double>(load_f16(h));
}

// Elements of an n-d array in C order, whatever its strides.
template <double (*Load)(const char*)>
void copy_elements(const char* data, int nd, const Py_ssize_t* dims, const Py_ssize_t* strides,
                   bool c_contiguous, Py_ssize_t itemsize, double* out) {
  if (nd == 0) {
    out[0] = Load(data);
    return;
  }
  if (c_contiguous) {
    Py_ssize_t n = 1;
    for (int d = 0; d < nd; ++d) n *= dims[d];
    for (Py_ssize_t i = 0; i < n; ++i) out[i] = Load(data + i * itemsize);
    return;
  }
  Py_ssize_t idx[kMaxDims] = {0};
  const Py_ssize_t inner = dims[nd - 1], inner_stride = strides[nd - 1];
  for (;;) {
    const char* p = data;
    for (int d = 0; d < nd - 1; ++d) p += idx[d] * strides[d];
    for (Py_ssize_t i = 0; i < inner; ++i) *out++ = Load(p + i * inner_stride);
    int d = nd - 2;
    while (d >= 0 && ++idx[d] == dims[d]) idx[d--] = 0;
    if (d < 0) return;
  }
}

void prefetch_lines(const void* p, int lines) {
  const char* c = static_cast<const char*>(p);
  for (int i = 0; i < lines; ++i) __builtin_prefetch(c + 64 * i);
}

// A dict's key table (entries follow its small header and index): CPython's own
// PyDictObject field, public in the non-limited API.
const void* dict_keys(PyObject* d) { return reinterpret_cast<PyDictObject*>(d)->ma_keys; }

std::string exception_text() {
  PyObject *type, *value, *trace;
  PyErr_Fetch(&type, &value, &trace);
  PyErr_NormalizeException(&type, &value, &trace);
  std::string out = type ? reinterpret_cast<PyTypeObject*>(type)->tp_name : "error";
  if (value) {
    PyObject* s = PyObject_Str(value);
    const char* text = s ? PyUnicode_AsUTF8(s) : nullptr;
    if (text && *text) out += std::string(": ") + text;
    Py_XDECREF(s);
    PyErr_Clear();
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(trace);
  return out;
}

}  // namespace

InfoFlattener::InfoFlattener(py::object classify_type, py::object leaf_array)
    : classify_type_(std::move(classify_type)), leaf_array_(std::move(leaf_array)) {
  Node root;
  root.path = PyUnicode_FromString("");
  if (!root.path) throw py::error_already_set();
  root.parent = kNoNode;
  nodes_.push_back(std::move(root));
  slots_.assign(1024, kNoNode);
}

InfoFlattener::~InfoFlattener() {
  reset_call();
  for (Node& n : nodes_) {
    Py_XDECREF(n.key);
    Py_XDECREF(n.path);
  }
}

// ---- the key-path trie --------------------------------------------------------------

uint32_t InfoFlattener::find_child(uint32_t parent, PyObject* key, Py_hash_t hash) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = slot_hash(parent, hash) & mask;; i = (i + 1) & mask) {
    const uint32_t s = slots_[i];
    if (s == kNoNode) return kNoNode;
    const Node& n = nodes_[s];
    if (n.parent == parent && n.hash == hash && same_str(n.key, key)) return s;
  }
}

void InfoFlattener::index_node(uint32_t node) {
  if ((slots_used_ + 1) * 2 > slots_.size()) {
    slots_.assign(slots_.size() * 2, kNoNode);
    slots_used_ = 0;
    for (uint32_t i = 1; i < node; ++i) index_node(i);
  }
  const size_t mask = slots_.size() - 1;
  size_t i = slot_hash(nodes_[node].parent, nodes_[node].hash) & mask;
  while (slots_[i] != kNoNode) i = (i + 1) & mask;
  slots_[i] = node;
  ++slots_used_;
}

void InfoFlattener::rebuild_index() {
  size_t size = 1024;
  while (size < nodes_.size() * 2) size *= 2;
  slots_.assign(size, kNoNode);
  slots_used_ = 0;
  for (uint32_t i = 1; i < nodes_.size(); ++i) index_node(i);
}

uint32_t InfoFlattener::add_child(uint32_t parent, PyObject* key, Py_hash_t hash) {
  if (nodes_.size() >= kNoNode - 1) throw std::length_error("rollout key-path table is full");
  PyObject* prefix = nodes_[parent].path;
  // Joined as today's paths were: str(key) under an empty prefix, "prefix/key" below.
  PyObject* path = PyUnicode_GET_LENGTH(prefix) == 0
                       ? Py_NewRef(key)
                       : PyUnicode_FromFormat("%U/%U", prefix, key);
  if (!path) throw py::error_already_set();
  Node n;
  n.key = Py_NewRef(key);
  n.path = path;
  n.hash = hash;
  n.parent = parent;
  n.seen = period_;
  nodes_.push_back(std::move(n));
  const auto id = static_cast<uint32_t>(nodes_.size() - 1);
  index_node(id);
  return id;
}

InfoFlattener::Status InfoFlattener::child_of(uint32_t frame_index, PyObject* key,
                                              uint32_t* child) {
  py::object converted;
  if (!PyUnicode_CheckExact(key)) {
    // Non-str keys (ints, enums, str subclasses) become the str today's paths used:
    // str(key) at the top, format(key, "") (an f-string) below.
    const uint32_t parent = stack_[frame_index].node;
    PyObject* s = PyUnicode_GET_LENGTH(nodes_[parent].path) == 0
                      ? PyObject_Str(key)
                      : PyObject_Format(key, nullptr);
    if (!s) return python_error(parent, kBadKey);
    converted = py::reinterpret_steal<py::object>(s);
    if (!PyUnicode_CheckExact(s)) {  // a str subclass: its exact str, so hash/eq are str's
      converted = py::reinterpret_steal<py::object>(PyUnicode_FromObject(s));
      if (!converted) return python_error(parent, kBadKey);
    }
    if (!unchanged()) return reject(kChanged, parent);
    key = converted.ptr();
  }
  const Py_hash_t hash = str_hash(key);  // exact str: no Python code
  Frame& f = stack_[frame_index];
  const uint32_t j = f.entry++;
  const Node& parent = nodes_[f.node];
  if (j < parent.order.size()) {
    const Node& guess = nodes_[parent.order[j]];
    if (guess.hash == hash && same_str(guess.key, key)) {
      *child = parent.order[j];
      return kOk;
    }
  }
  *child = slow_child(f.node, j, key, hash);
  return kOk;
}

// The key at `position` of a dict at `parent` is not the one seen there last time.
uint32_t InfoFlattener::slow_child(uint32_t parent, uint32_t position, PyObject* key,
                                   Py_hash_t hash) {
  uint32_t c = find_child(parent, key, hash);
  if (c == kNoNode) c = add_child(parent, key, hash);  // may move nodes_
  std::vector<uint32_t>& order = nodes_[parent].order;
  if (position < order.size()) {
    order[position] = c;
  } else {
    order.push_back(c);
  }
  return c;
}

int64_t InfoFlattener::key_of(uint32_t node) {
  int64_t k = nodes_[node].key_id;
  if (k >= 0) return k;
  k = intern(nodes_[node].path);
  nodes_[node].key_id = k;
  return k;
}

int64_t InfoFlattener::intern(py::handle path) {
  if (!PyUnicode_Check(path.ptr())) throw py::type_error("a key path is a str");
  py::object exact = py::reinterpret_steal<py::object>(PyUnicode_FromObject(path.ptr()));
  if (!exact) throw py::error_already_set();
  PyObject* found = PyDict_GetItemWithError(ids_.ptr(), exact.ptr());
  int64_t k;
  if (found) {
    k = PyLong_AsLongLong(found);
    if (k == -1 && PyErr_Occurred()) throw py::error_already_set();
  } else {
    if (PyErr_Occurred()) throw py::error_already_set();
    k = static_cast<int64_t>(PyList_GET_SIZE(names_.ptr()));
    py::object id = py::int_(k);
    if (PyList_Append(names_.ptr(), exact.ptr()) < 0 ||
        PyDict_SetItem(ids_.ptr(), exact.ptr(), id.ptr()) < 0)
      throw py::error_already_set();
    columns_.resize(static_cast<size_t>(k) + 1);
  }
  columns_[static_cast<size_t>(k)].seen = period_;
  return k;
}

// ---- values ---------------------------------------------------------------------------

constexpr size_t kPooledBuffers = 2;                 // a call's, and the one before
constexpr int64_t kMaxPooledDoubles = int64_t{1} << 23;  // 64 MiB: larger ones are freed

double* InfoFlattener::BufferPool::take(int64_t need, int64_t* cap) {
  size_t best = buffers.size();
  for (size_t i = 0; i < buffers.size(); ++i)
    if (buffers[i].second >= need && (best == buffers.size() || buffers[i].second < buffers[best].second))
      best = i;
  if (best == buffers.size()) return nullptr;
  double* p = buffers[best].first;
  *cap = buffers[best].second;
  buffers.erase(buffers.begin() + static_cast<std::ptrdiff_t>(best));
  return p;
}

void InfoFlattener::BufferPool::give(double* buffer, int64_t cap) {
  if (buffers.size() < kPooledBuffers && cap <= kMaxPooledDoubles) {
    buffers.emplace_back(buffer, cap);
  } else {
    std::free(buffer);
  }
}

InfoFlattener::BufferPool::~BufferPool() {
  for (auto& b : buffers) std::free(b.first);
}

void InfoFlattener::grow_arena(int64_t need) {
  if (need <= arena_cap_) return;
  if (!arena_ && need > 0) {
    int64_t cap = 0;
    if (double* p = pool_->take(need, &cap)) {
      arena_ = p;
      arena_cap_ = cap;
      return;
    }
  }
  const int64_t cap = std::max<int64_t>({need, arena_cap_ * 2, 1024});
  void* p = std::realloc(arena_, static_cast<size_t>(cap) * sizeof(double));
  if (!p) throw std::bad_alloc();
  arena_ = static_cast<double*>(p);
  arena_cap_ = cap;
}

void InfoFlattener::first_touch(int64_t key, Column& c) {
  c.saved_pieces = c.pieces.size();
  c.saved_open_start = c.open_start;
  c.saved_open_used = c.open_used;
  c.saved_open_cap = c.open_cap;
  c.saved_written = c.written;
  c.saved_call = c.call;
  if (c.call != call_) {
    c.call = call_;
    c.pieces.clear();
    c.open_start = c.open_used = c.open_cap = c.written = 0;
    c.seen = period_;
    touched_.push_back(key);
  }
  c.info = info_;
}

void InfoFlattener::close_chunk(Column& c) {
  if (c.open_used > 0) c.pieces.push_back(Piece{c.open_start, c.open_used, -1});
  // The unused tail is never read, but it becomes part of the values array: zeroed, so
  // no stale heap bytes ever reach a pickle or a checkpoint.
  if (c.open_cap > c.open_used)
    std::memset(arena_ + c.open_start + c.open_used, 0,
                static_cast<size_t>(c.open_cap - c.open_used) * sizeof(double));
  c.open_start += c.open_cap;
  c.open_used = c.open_cap = 0;
}

double* InfoFlattener::reserve(uint32_t node, int64_t n) {
  Column& c = touch(key_of(node));
  if (c.open_cap - c.open_used < n) {
    close_chunk(c);
    // The first chunk of a call holds what the key held last call (one segment when
    // the shape repeats); later ones double the key's total.
    const bool first = c.pieces.empty() && c.written == 0;
    const int64_t cap = first ? std::max(n, c.predicted > 0 ? c.predicted : kMinChunk)
                              : std::max({n, kMinChunk, c.written});
    grow_arena(arena_used_ + cap);
    c.open_start = arena_used_;
    c.open_cap = cap;
    arena_used_ += cap;
  }
  double* p = arena_ + c.open_start + c.open_used;
  c.open_used += n;
  c.written += n;
  return p;
}

void InfoFlattener::add_tensor(uint32_t node, PyObject* tensor) {
  Column& c = touch(key_of(node));
  if (c.open_used > 0) {  // split the chunk: values before the tensor, the rest after it
    c.pieces.push_back(Piece{c.open_start, c.open_used, -1});
    c.open_start += c.open_used;
    c.open_cap -= c.open_used;
    c.open_used = 0;
  }
  c.pieces.push_back(Piece{0, 0, static_cast<int64_t>(tensors_.size())});
  tensors_.push_back(TensorRef{py::reinterpret_borrow<py::object>(tensor), node});
}

void InfoFlattener::skip(uint32_t node) {
  Node& n = nodes_[node];
  if (n.skipped_call != call_) {
    n.skipped_call = call_;
    skipped_.push_back(node);
  }
}

// ---- leaves ---------------------------------------------------------------------------

InfoFlattener::Status InfoFlattener::reject(const char* reason, uint32_t node,
                                            std::string detail) {
  rejected_.push_back(Rejected{info_index_, reason,
                               py::reinterpret_borrow<py::object>(nodes_[node].path),
                               std::move(detail)});
  return kReject;
}

InfoFlattener::Status InfoFlattener::python_error(uint32_t node, const char* reason) {
  if (!PyErr_ExceptionMatches(PyExc_Exception)) return kRaise;  // KeyboardInterrupt...
  return reject(reason, node, exception_text());
}

// Called after every place where Python code may have run: the entries read ahead are
// no longer trusted (a value could have been replaced and freed), and no dict being
// walked may have changed size.
bool InfoFlattener::unchanged() {
  ++callbacks_;
  for (const Frame& f : stack_)
    if (!f.items && PyDict_GET_SIZE(f.map) != f.size) return false;
  return true;
}

InfoFlattener::Status InfoFlattener::kind_of(PyObject* v, uint32_t node, int* kind) {
  PyTypeObject* tp = Py_TYPE(v);
  auto it = type_kinds_.find(tp);
  if (it != type_kinds_.end()) {
    *kind = it->second;
    return kOk;
  }
  if (type_kinds_.size() >= kMaxCachedTypes) {
    type_kinds_.clear();
    type_refs_.clear();
    array_type_ = nullptr;
  }
  PyObject* r = PyObject_CallOneArg(classify_type_.ptr(), reinterpret_cast<PyObject*>(tp));
  long k = r ? PyLong_AsLong(r) : -1;
  Py_XDECREF(r);
  if (k == -1 && PyErr_Occurred()) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return kRaise;
    PyErr_Clear();
    k = kLeafSkip;  // a type that cannot be classified is not a number (not cached)
  } else {
    type_kinds_.emplace(tp, static_cast<int>(k));
    if (k == kLeafArray && !array_type_) array_type_ = tp;
    type_refs_.push_back(py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(tp)));
  }
  *kind = static_cast<int>(k);
  return unchanged() ? kOk : reject(kChanged, node);
}

InfoFlattener::Status InfoFlattener::number(uint32_t node, PyObject* v) {
  PyObject* f = PyNumber_Float(v);
  if (f) {
    put(node, PyFloat_AS_DOUBLE(f));
    Py_DECREF(f);
  } else {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return kRaise;
    PyErr_Clear();  // an int beyond float range, a number whose __float__ fails: skipped
    skip(node);
  }
  return unchanged() ? kOk : reject(kChanged, node);
}

InfoFlattener::Status InfoFlattener::helper_array(uint32_t node, PyObject* v) {
  PyObject* r = PyObject_CallOneArg(leaf_array_.ptr(), v);
  Status s = kOk;
  if (!r) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return kRaise;
    PyErr_Clear();
    skip(node);
  } else {
    py::object held = py::reinterpret_steal<py::object>(r);
    int kind = kLeafSkip;
    if (r != Py_None) s = kind_of(r, node, &kind);
    if (s == kOk) {
      if (kind == kLeafArray) {
        s = array(node, r, true);
      } else {
        skip(node);
      }
    }
  }
  if (s != kOk) return s;
  return unchanged() ? kOk : reject(kChanged, node);
}

InfoFlattener::Status InfoFlattener::array(uint32_t node, PyObject* v, bool helped) {
  const auto* a = py::detail::array_proxy(v);
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  const char kind = d->kind;
  if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f') {
    skip(node);  // str, object, complex, datetime, void: not numbers
    return kOk;
  }
  const int t = d->type_num;
  const bool known = (t >= kNpyBool && t <= kNpyLongDouble) || t == kNpyHalf;
  if (!known || !native_byte_order(d->byteorder) || a->nd > kMaxDims) {
    if (helped) {  // the helper's own array should never be odd: do not loop
      skip(node);
      return kOk;
    }
    py::object hold = py::reinterpret_borrow<py::object>(v);  // Python code runs next
    return helper_array(node, v);
  }
  int64_t n = 1;
  for (int i = 0; i < a->nd; ++i) n *= a->dimensions[i];
  if (n == 0) return kOk;
  double* out = reserve(node, n);
  const bool c = (a->flags & kNpyCContiguous) != 0;
  if (c && t == kNpyDouble) {
    std::memcpy(out, a->data, static_cast<size_t>(n) * sizeof(double));
    return kOk;
  }
  const int nd = a->nd;
  const Py_ssize_t* dims = a->dimensions;
  const Py_ssize_t* st = a->strides;
  const char* data = a->data;
  switch (t) {
    case kNpyBool: copy_elements<load_bool>(data, nd, dims, st, c, 1, out); break;
    case kNpyByte: copy_elements<load_as_double<int8_t>>(data, nd, dims, st, c, 1, out); break;
    case kNpyUByte: copy_elements<load_as_double<uint8_t>>(data, nd, dims, st, c, 1, out); break;
    case kNpyShort: copy_elements<load_as_double<int16_t>>(data, nd, dims, st, c, 2, out); break;
    case kNpyUShort:
      copy_elements<load_as_double<uint16_t>>(data, nd, dims, st, c, 2, out);
      break;
    case kNpyInt: copy_elements<load_as_double<int>>(data, nd, dims, st, c, sizeof(int), out); break;
    case kNpyUInt:
      copy_elements<load_as_double<unsigned>>(data, nd, dims, st, c, sizeof(unsigned), out);
      break;
    case kNpyLong:
      copy_elements<load_as_double<long>>(data, nd, dims, st, c, sizeof(long), out);
      break;
    case kNpyULong:
      copy_elements<load_as_double<unsigned long>>(data, nd, dims, st, c, sizeof(unsigned long),
                                                   out);
      break;
    case kNpyLongLong:
      copy_elements<load_as_double<long long>>(data, nd, dims, st, c, sizeof(long long), out);
      break;
    case kNpyULongLong:
      copy_elements<load_as_double<unsigned long long>>(data, nd, dims, st, c,
                                                        sizeof(unsigned long long), out);
      break;
    case kNpyFloat: copy_elements<load_as_double<float>>(data, nd, dims, st, c, 4, out); break;
    case kNpyDouble: copy_elements<load_as_double<double>>(data, nd, dims, st, c, 8, out); break;
    case kNpyLongDouble:
      copy_elements<load_as_double<long double>>(data, nd, dims, st, c, sizeof(long double),
                                                 out);
      break;
    default: copy_elements<load_half>(data, nd, dims, st, c, 2, out); break;
  }
  return kOk;
}

InfoFlattener::Status InfoFlattener::sequence(uint32_t node, PyObject* v) {
  if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
    // numpy.asarray's reading of a flat list of Python floats, bools and ints within
    // int64, without building the array: all count, as float64 (ints converted as
    // numpy converts them). Anything else (nested lists, numpy scalars, ints beyond
    // int64, whose dtype numpy picks by rules of its own) goes to numpy itself.
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
    PyObject** items = PySequence_Fast_ITEMS(v);
    bool plain = true;
    for (Py_ssize_t i = 0; i < n && plain; ++i) {
      PyObject* x = items[i];
      if (PyLong_CheckExact(x)) {
        int overflow = 0;
        PyLong_AsLongLongAndOverflow(x, &overflow);
        plain = overflow == 0;
      } else {
        plain = PyFloat_CheckExact(x) || PyBool_Check(x);
      }
    }
    if (plain) {
      if (n == 0) return kOk;
      double* out = reserve(node, n);
      for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* x = items[i];
        if (PyFloat_CheckExact(x)) {
          out[i] = PyFloat_AS_DOUBLE(x);
        } else if (PyBool_Check(x)) {
          out[i] = x == Py_True ? 1.0 : 0.0;
        } else {
          out[i] = static_cast<double>(PyLong_AsLongLong(x));
        }
      }
      return kOk;
    }
  }
  return helper_array(node, v);
}

InfoFlattener::Status InfoFlattener::leaf(uint32_t node, PyObject* v, py::object& hold,
                                          bool* is_mapping) {
  if (PyFloat_CheckExact(v)) {
    put(node, PyFloat_AS_DOUBLE(v));
    return kOk;
  }
  if (PyLong_CheckExact(v)) {
    const double x = PyLong_AsDouble(v);
    if (x == -1.0 && PyErr_Occurred()) {  // beyond float range
      PyErr_Clear();
      skip(node);
    } else {
      put(node, x);
    }
    return kOk;
  }
  if (PyBool_Check(v)) {
    put(node, v == Py_True ? 1.0 : 0.0);
    return kOk;
  }
  if (PyDict_Check(v)) {
    *is_mapping = true;
    return kOk;
  }
  if (v == Py_None || PyUnicode_CheckExact(v) || PyBytes_CheckExact(v)) {
    skip(node);
    return kOk;
  }
  if (!hold) hold = py::reinterpret_borrow<py::object>(v);  // Python code may run below
  int kind = kLeafSkip;
  const Status s = kind_of(v, node, &kind);
  if (s != kOk) return s;
  switch (kind) {
    case kLeafFloat:
      if (PyFloat_Check(v)) {
        put(node, PyFloat_AS_DOUBLE(v));
        return kOk;
      }
      return number(node, v);
    case kLeafNumber: return number(node, v);
    case kLeafMapping: *is_mapping = true; return kOk;
    case kLeafSequence: return sequence(node, v);
    case kLeafTensor: add_tensor(node, v); return kOk;
    case kLeafArray: return array(node, v, false);
    default: skip(node); return kOk;
  }
}

// ---- walking --------------------------------------------------------------------------

InfoFlattener::Status InfoFlattener::push(PyObject* map, uint32_t node) {
  if (stack_.size() >= kMaxDepth) return reject(kTooDeep, node);
  for (const Frame& f : stack_)
    if (f.map == map) return reject(kCycle, node);
  const size_t begin = entries_.size();
  Frame f{Py_NewRef(map), nullptr, 0, 0, node, 0, begin, begin, begin, callbacks_};
  if (PyDict_Check(map)) {
    f.size = PyDict_GET_SIZE(map);
    // Fresh infos are not in cache, and reading them is a chain of dependent loads
    // (dict -> entries -> key and value objects -> an array's data, a nested dict's
    // entries). The dict's entries are read ahead, and what they point to is asked for
    // before it is needed, so more of those loads run side by side (measured on fresh
    // 1,024-info calls, 5 runs each: uniform 2.56 -> 2.39 ms, ragged 1.53 -> 1.28 ms).
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(map, &pos, &k, &v)) {
      entries_.push_back(Entry{k, v, pos});
      __builtin_prefetch(k);
      __builtin_prefetch(v);
    }
    f.end = entries_.size();
    for (size_t i = begin; i < f.end; ++i) {
      PyObject* value = entries_[i].value;
      if (Py_TYPE(value) == &PyDict_Type) {
        prefetch_lines(dict_keys(value), 4);
      } else if (Py_TYPE(value) == array_type_) {
        const auto* a = py::detail::array_proxy(value);
        prefetch_lines(a->data, 3);  // 24 float64s, per-agent arrays' usual size
        __builtin_prefetch(a->dimensions);
      }
    }
  } else {
    f.items = PyMapping_Items(map);
    if (!f.items || !PyList_Check(f.items)) {
      Py_DECREF(f.map);
      if (!f.items) return python_error(node, kBadMapping);
      Py_DECREF(f.items);
      return reject(kBadMapping, node, "items() did not return a list");
    }
    if (!unchanged()) {
      Py_DECREF(f.map);
      Py_DECREF(f.items);
      return reject(kChanged, node);
    }
  }
  stack_.push_back(f);
  return kOk;
}

void InfoFlattener::pop_frame() {
  Frame& f = stack_.back();
  entries_.resize(f.begin);
  Py_DECREF(f.map);
  Py_XDECREF(f.items);
  stack_.pop_back();
}

void InfoFlattener::clear_stack() {
  for (Frame& f : stack_) {
    Py_XDECREF(f.map);
    Py_XDECREF(f.items);
  }
  stack_.clear();
  entries_.clear();
}

InfoFlattener::Status InfoFlattener::walk_mapping(PyObject* info) {
  Status s = push(info, 0);
  int64_t entries = 0;
  while (s == kOk && !stack_.empty()) {
    const auto fi = static_cast<uint32_t>(stack_.size() - 1);
    Frame& f = stack_[fi];
    PyObject *k, *v;
    if (f.items) {
      if (f.pos >= PyList_GET_SIZE(f.items)) {
        pop_frame();
        continue;
      }
      PyObject* pair = PyList_GET_ITEM(f.items, f.pos++);
      if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        s = reject(kBadMapping, f.node, "items() gave something other than (key, value) pairs");
        break;
      }
      k = PyTuple_GET_ITEM(pair, 0);
      v = PyTuple_GET_ITEM(pair, 1);
    } else if (f.callbacks == callbacks_) {  // no Python code since the read-ahead
      if (f.cur == f.end) {
        pop_frame();
        continue;
      }
      const Entry& e = entries_[f.cur++];
      k = e.key;
      v = e.value;
      f.pos = e.pos;
    } else if (!PyDict_Next(f.map, &f.pos, &k, &v)) {  // live: the dict as it is now
      pop_frame();
      continue;
    }
    if (++entries > kMaxEntriesPerInfo) {
      s = reject(kTooLarge, f.node);
      break;
    }
    uint32_t child = 0;
    py::object hold_k, hold_v;  // set only where Python code may run (see below)
    if (PyUnicode_CheckExact(k)) {
      // Inline: the key at this position is nearly always the one seen here last time.
      const Py_hash_t hash = str_hash(k);
      const uint32_t j = f.entry++;
      const Node& parent = nodes_[f.node];
      if (j < parent.order.size() && nodes_[parent.order[j]].hash == hash &&
          same_str(nodes_[parent.order[j]].key, k)) {
        child = parent.order[j];
      } else {
        child = slow_child(f.node, j, k, hash);
      }
    } else {
      // k and v are borrowed from a dict that Python code (str(key)) could change.
      hold_k = py::reinterpret_borrow<py::object>(k);
      hold_v = py::reinterpret_borrow<py::object>(v);
      s = child_of(fi, k, &child);
      if (s != kOk) break;
    }
    nodes_[child].seen = period_;
    // The common leaves inline: floats, per-agent numpy arrays, ints.
    if (PyFloat_CheckExact(v)) {
      put(child, PyFloat_AS_DOUBLE(v));
      continue;
    }
    if (Py_TYPE(v) == array_type_) {
      s = array(child, v, false);
      continue;
    }
    if (PyLong_CheckExact(v)) {
      const double x = PyLong_AsDouble(v);
      if (x == -1.0 && PyErr_Occurred()) {  // beyond float range
        PyErr_Clear();
        skip(child);
      } else {
        put(child, x);
      }
      continue;
    }
    bool is_mapping = false;
    s = leaf(child, v, hold_v, &is_mapping);
    if (s == kOk && is_mapping) s = push(v, child);
  }
  clear_stack();
  return s;
}

InfoFlattener::Status InfoFlattener::walk_info(PyObject* info, Py_ssize_t index) {
  if (!PyDict_Check(info)) {
    if (info == Py_None) return kOk;
    int kind = kLeafSkip;
    info_index_ = index;
    const Status s = kind_of(info, 0, &kind);
    if (s != kOk) return s;
    if (kind != kLeafMapping) return kOk;  // not a mapping: ignored, as documented
  }
  ++info_;
  info_index_ = index;
  const int64_t arena_mark = arena_used_;
  const size_t tensors_mark = tensors_.size(), skipped_mark = skipped_.size(),
               touched_mark = touched_.size(), nodes_mark = nodes_.size(),
               keys_mark = columns_.size();
  const Status s = walk_mapping(info);
  if (s == kOk) return kOk;
  // Undo the info: its columns back to where they were; its chunks, tensors, skips,
  // and the paths and keys it created dropped (a hostile info must not leave a million
  // keys behind).
  for (const int64_t key : touched_) {  // this call's columns; those of this info undone
    Column& c = columns_[static_cast<size_t>(key)];
    if (c.info != info_) continue;
    if (c.saved_call == call_) {
      c.pieces.resize(c.saved_pieces);
      c.open_start = c.saved_open_start;
      c.open_used = c.saved_open_used;
      c.open_cap = c.saved_open_cap;
      c.written = c.saved_written;
    } else {
      c.pieces.clear();
      c.open_start = c.open_used = c.open_cap = c.written = 0;
    }
    c.call = c.saved_call;
    c.info = 0;
  }
  touched_.resize(touched_mark);
  tensors_.resize(tensors_mark);
  for (size_t i = skipped_mark; i < skipped_.size(); ++i) nodes_[skipped_[i]].skipped_call = 0;
  skipped_.resize(skipped_mark);
  arena_used_ = arena_mark;
  if (columns_.size() > keys_mark) drop_keys_from(keys_mark);
  if (nodes_.size() > nodes_mark) drop_nodes_from(nodes_mark);
  return s;
}

void InfoFlattener::drop_keys_from(size_t mark) {
  for (size_t k = mark; k < columns_.size(); ++k) {
    PyObject* name = PyList_GET_ITEM(names_.ptr(), static_cast<Py_ssize_t>(k));
    if (PyDict_DelItem(ids_.ptr(), name) < 0) PyErr_Clear();
  }
  if (PyList_SetSlice(names_.ptr(), static_cast<Py_ssize_t>(mark), PY_SSIZE_T_MAX, nullptr) < 0)
    throw py::error_already_set();
  columns_.resize(mark);
  for (Node& n : nodes_)
    if (n.key_id >= static_cast<int64_t>(mark)) n.key_id = -1;
}

void InfoFlattener::drop_nodes_from(size_t mark) {
  for (size_t i = mark; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (n.parent < mark) {  // its parent stays: forget the position that led here
      std::vector<uint32_t>& order = nodes_[n.parent].order;
      for (size_t j = 0; j < order.size(); ++j) {
        if (order[j] >= mark) {
          order.resize(j);
          break;
        }
      }
    }
    Py_XDECREF(n.key);
    Py_XDECREF(n.path);
  }
  nodes_.resize(mark);
  rebuild_index();
}

void InfoFlattener::reset_call() {
  clear_stack();
  if (arena_) pool_->give(arena_, arena_cap_);
  arena_ = nullptr;
  arena_used_ = arena_cap_ = 0;
  touched_.clear();
  tensors_.clear();
  skipped_.clear();
  rejected_.clear();
  walked_ = false;
}

py::list InfoFlattener::walk(py::handle infos) {
  if (busy_)
    throw std::runtime_error(
        "the rollout flattener is already walking (add() called from inside add())");
  struct Busy {
    InfoFlattener* self;
    explicit Busy(InfoFlattener* s) : self(s) { self->busy_ = true; }
    ~Busy() { self->busy_ = false; }
  } busy(this);
  reset_call();
  py::object seq = py::reinterpret_steal<py::object>(PySequence_Tuple(infos.ptr()));
  if (!seq) throw py::error_already_set();
  ++call_;
  try {
    grow_arena(last_total_);
    const Py_ssize_t n = PyTuple_GET_SIZE(seq.ptr());
    PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
    for (Py_ssize_t i = 0; i < n; ++i) {
      // The next infos' dicts and key tables on their way while this one is walked.
      if (i + 2 < n) __builtin_prefetch(items[i + 2]);
      if (i + 1 < n && PyDict_CheckExact(items[i + 1])) prefetch_lines(dict_keys(items[i + 1]), 4);
      if (walk_info(items[i], i) == kRaise) throw py::error_already_set();
    }
  } catch (...) {
    reset_call();
    throw;
  }
  walked_ = true;
  py::list out(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i)
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), Py_NewRef(tensors_[i].tensor.ptr()));
  return out;
}

py::tuple InfoFlattener::finish(py::handle host, py::handle lengths) {
  if (!walked_) throw std::runtime_error("finish() without a walk() before it");
  walked_ = false;
  const auto lens = lengths.is_none() ? std::vector<int64_t>()
                                      : py::cast<std::vector<int64_t>>(lengths);
  if (lens.size() != tensors_.size()) {
    reset_call();
    throw py::value_error("finish(): one length per tensor of the walk");
  }
  int64_t total = 0;
  std::vector<int64_t> offsets(lens.size());
  for (size_t t = 0; t < lens.size(); ++t) {
    offsets[t] = total;
    if (lens[t] > 0) total += lens[t];
  }
  Py_buffer view{};
  bool have_view = false;
  if (total > 0) {
    if (host.is_none() ||
        PyObject_GetBuffer(host.ptr(), &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
      PyErr_Clear();
      reset_call();
      throw py::value_error("finish(): host values must be a contiguous float64 buffer");
    }
    have_view = true;
    const bool is_f64 = view.itemsize == 8 && view.format &&
                        (std::strcmp(view.format, "d") == 0 || std::strcmp(view.format, "=d") == 0 ||
                         std::strcmp(view.format, "<d") == 0);
    if (!is_f64 || view.len != total * 8) {
      PyBuffer_Release(&view);
      reset_call();
      throw py::value_error("finish(): host values must be float64, as many as the lengths say");
    }
  }
  const auto* host_values = have_view ? static_cast<const double*>(view.buf) : nullptr;
  for (size_t t = 0; t < lens.size(); ++t)
    if (lens[t] < 0) skip(tensors_[t].node);  // could not reach the host

  std::vector<int64_t> seg;  // (key, start, length) triples
  try {
    grow_arena(arena_used_ + total);
  } catch (...) {
    if (have_view) PyBuffer_Release(&view);
    reset_call();
    throw;
  }
  for (const int64_t key : touched_) {
    Column& c = columns_[static_cast<size_t>(key)];
    close_chunk(c);
    c.predicted = c.written;
    for (size_t i = 0; i < c.pieces.size();) {
      const Piece& p = c.pieces[i];
      if (p.tensor < 0) {
        seg.insert(seg.end(), {key, p.start, p.len});
        ++i;
        continue;
      }
      // A run of tensors of this key: their host values side by side, one segment.
      const int64_t start = arena_used_;
      for (; i < c.pieces.size() && c.pieces[i].tensor >= 0; ++i) {
        const auto t = static_cast<size_t>(c.pieces[i].tensor);
        if (lens[t] <= 0) continue;
        std::memcpy(arena_ + arena_used_, host_values + offsets[t],
                    static_cast<size_t>(lens[t]) * sizeof(double));
        arena_used_ += lens[t];
      }
      if (arena_used_ > start) seg.insert(seg.end(), {key, start, arena_used_ - start});
    }
  }
  if (have_view) PyBuffer_Release(&view);
  last_total_ = arena_used_;

  const auto n_seg = static_cast<py::ssize_t>(seg.size() / 3);
  py::array_t<int64_t> segments({py::ssize_t{4}, n_seg});
  int64_t* out = segments.mutable_data();
  for (py::ssize_t s = 0; s < n_seg; ++s) {
    out[s] = seg[3 * s];
    out[n_seg + s] = seg[3 * s + 1];
    out[2 * n_seg + s] = seg[3 * s + 2];
    out[3 * n_seg + s] = 1;
  }
  py::array_t<double> values;
  if (arena_used_ > 0) {
    // The array owns the buffer now; when it dies, the buffer goes back to the pool.
    struct Owner {
      double* data;
      int64_t cap;
      std::shared_ptr<BufferPool> pool;
    };
    auto* owner = new Owner{arena_, arena_cap_, pool_};
    py::capsule handle(owner, [](void* p) {
      auto* o = static_cast<Owner*>(p);
      o->pool->give(o->data, o->cap);
      delete o;
    });
    values = py::array_t<double>({arena_used_}, {static_cast<py::ssize_t>(sizeof(double))},
                                 arena_, handle);
    arena_ = nullptr;
    arena_cap_ = 0;
  } else {
    values = py::array_t<double>(0);
  }
  py::list skipped(skipped_.size());
  for (size_t i = 0; i < skipped_.size(); ++i)
    PyList_SET_ITEM(skipped.ptr(), static_cast<Py_ssize_t>(i),
                    Py_NewRef(nodes_[skipped_[i]].path));
  py::list rejected;
  for (const Rejected& r : rejected_)
    rejected.append(py::make_tuple(r.info, r.reason, r.path, r.detail));
  reset_call();
  return py::make_tuple(segments, values, skipped, rejected);
}

// ---- forgetting -----------------------------------------------------------------------

int64_t InfoFlattener::forget(int64_t keep_periods) {
  if (busy_) throw std::runtime_error("forget() during a walk");
  const uint64_t period = period_++;
  if (keep_periods <= 0) return 0;
  // Kept: what was seen in the last keep_periods periods (the one ending now included).
  auto recent = [&](uint64_t seen) {
    return seen + static_cast<uint64_t>(keep_periods) > period;
  };
  std::vector<int64_t> new_id(columns_.size(), -1);
  int64_t kept_keys = 0;
  for (size_t k = 0; k < columns_.size(); ++k)
    if (recent(columns_[k].seen)) new_id[k] = kept_keys++;
  std::vector<char> keep(nodes_.size(), 0);
  keep[0] = 1;
  bool any_node = false;
  for (size_t i = nodes_.size(); i-- > 1;) {
    if (recent(nodes_[i].seen)) keep[i] = 1;
    if (keep[i]) keep[nodes_[i].parent] = 1;  // parents come before children
    any_node |= keep[i] == 0;
  }
  const auto forgotten = static_cast<int64_t>(columns_.size()) - kept_keys;
  if (forgotten == 0 && !any_node) return 0;

  // Keys: ids renumbered in their old order; names and ids rebuilt in place (RolloutStats
  // holds these very objects).
  py::list names = py::reinterpret_steal<py::list>(PyList_GetSlice(names_.ptr(), 0, PY_SSIZE_T_MAX));
  if (PyList_SetSlice(names_.ptr(), 0, PY_SSIZE_T_MAX, nullptr) < 0) throw py::error_already_set();
  PyDict_Clear(ids_.ptr());
  std::vector<Column> columns;
  columns.reserve(static_cast<size_t>(kept_keys));
  for (size_t k = 0; k < columns_.size(); ++k) {
    if (new_id[k] < 0) continue;
    PyObject* name = PyList_GET_ITEM(names.ptr(), static_cast<Py_ssize_t>(k));
    py::object id = py::int_(new_id[k]);
    if (PyList_Append(names_.ptr(), name) < 0 || PyDict_SetItem(ids_.ptr(), name, id.ptr()) < 0)
      throw py::error_already_set();
    columns.push_back(std::move(columns_[k]));
  }
  columns_ = std::move(columns);

  // Nodes: the kept ones, renumbered (parents still first), with their key ids mapped.
  std::vector<uint32_t> new_index(nodes_.size(), kNoNode);
  std::vector<Node> nodes;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    Node& n = nodes_[i];
    if (!keep[i]) {
      Py_XDECREF(n.key);
      Py_XDECREF(n.path);
      continue;
    }
    new_index[i] = static_cast<uint32_t>(nodes.size());
    if (i > 0) n.parent = new_index[n.parent];
    if (n.key_id >= 0) n.key_id = new_id[static_cast<size_t>(n.key_id)];
    nodes.push_back(std::move(n));
  }
  for (Node& n : nodes) {
    size_t w = 0;
    for (const uint32_t c : n.order)
      if (new_index[c] != kNoNode) n.order[w++] = new_index[c];
    n.order.resize(w);
  }
  nodes_ = std::move(nodes);
  rebuild_index();
  return forgotten;
}

}  // namespace cpython
}  // namespace fusedstats
