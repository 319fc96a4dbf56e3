// The rollout info flattener: reads lists of nested info dicts with the CPython C API.
//
// Why this file needs Python, when the rest of the core does not (DESIGN.md, STYLE.md
// rule 3): its input *is* Python objects. A rollout step hands over ~1,000 dicts of
// ~50 floats, ints and numpy arrays, and reading those objects is the whole cost
// (measured: 57,000 objects through the interpreter took 6 ms of a 7 ms add()). There
// is no plain-pointer form of a dict to hand to a torch-free kernel, so the walk itself
// has to be native. It is kept apart from the numeric code on purpose: the portable
// math headers (csrc/include/fusedstats) and the kernels (csrc/cpu) stay free of
// Python; this directory (csrc/cpython) is where code that touches PyObject lives.
//
// Division of labour (STYLE rule 4, policy in Python): fusedstats.rollout.flatten
// decides what a leaf *is* for every type the walk does not know by heart (a callback,
// asked once per type), converts the rare leaves the walk does not read itself (lists of
// odd things, non-native byte orders), and moves torch tensors to the host. This file
// walks, interns key paths, and writes values; it never imports torch or numpy.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace fusedstats {
namespace cpython {

namespace py = pybind11;

// What fusedstats.rollout.flatten.classify_type answers for a type (keep in sync with
// the constants there).
enum LeafKind : int {
  kLeafSkip = 0,      // not a number: skipped and counted under its path
  kLeafNumber = 1,    // a number: float(v) (numpy scalars, Fraction, int subclasses)
  kLeafMapping = 2,   // a Mapping that is not a dict: walked through items()
  kLeafSequence = 3,  // list/tuple: all elements count, as numpy.asarray reads them
  kLeafTensor = 4,    // a torch tensor: handed back, moved to host by the caller
  kLeafArray = 5,     // a numpy array: read in C order
  kLeafFloat = 6,     // a float subclass whose value is the float itself (numpy.float64)
};

// One add() call's flattening, in two steps:
//   walk(infos)  -> the tensors met (in walk order); values of everything else are in
//                   the flattener's buffer already;
//   finish(host, lengths) -> (segments, values, skipped paths, rejected infos), once
//                   the caller has moved the tensors' values to the host.
// Segments are a (4, n) int64 array (key id, start, length, stride 1) into values, in
// an order where each key's values come in walk order: what the numba kernel reduces
// and RolloutStats.get slices. Both arrays are numpy arrays over memory this object
// allocated and handed over: no copy between the walk and the kernel.
class InfoFlattener {
 public:
  InfoFlattener(py::object classify_type, py::object leaf_array);
  ~InfoFlattener();
  InfoFlattener(const InfoFlattener&) = delete;
  InfoFlattener& operator=(const InfoFlattener&) = delete;

  py::list walk(py::handle infos);
  py::tuple finish(py::handle host, py::handle lengths);
  int64_t intern(py::handle path);
  int64_t forget(int64_t keep_periods);

  py::dict ids() const { return ids_; }
  py::list names() const { return names_; }
  int64_t node_count() const { return static_cast<int64_t>(nodes_.size()); }

 private:
  // A key path as reached through a chain of dict keys. Two nodes may share a path
  // string ("a/b" spelled as one key or nested): they share the key id.
  struct Node {
    PyObject* key = nullptr;   // owned str: the key (non-str keys: their str)
    PyObject* path = nullptr;  // owned str: the "/"-joined path
    Py_hash_t hash = 0;
    uint32_t parent = 0;
    int64_t key_id = -1;        // -1 until the path holds a number
    uint64_t seen = 0;          // the clear period of the last visit
    uint64_t skipped_call = 0;  // the call that last counted a skip here
    std::vector<uint32_t> order;  // children in the order of the last dict walked here
  };
  // Where a key's values of this call are: data chunks in the buffer, or a tensor's
  // values (tensor >= 0), placed by finish().
  struct Piece {
    int64_t start;
    int64_t len;
    int64_t tensor;
  };
  struct Column {
    std::vector<Piece> pieces;
    int64_t open_start = 0, open_used = 0, open_cap = 0;  // the chunk being filled
    int64_t written = 0;    // values written this call (tensors not counted)
    int64_t predicted = 0;  // written in the last call that had the key: the first chunk
    uint64_t call = 0, info = 0, seen = 0;
    // The state before the current info first touched it: a refused info is undone
    // from here (kept in the column itself: a log per touch measured 5% of the walk).
    size_t saved_pieces = 0;
    int64_t saved_open_start = 0, saved_open_used = 0, saved_open_cap = 0, saved_written = 0;
    uint64_t saved_call = 0;
  };
  struct Frame {
    PyObject* map;    // owned: the dict (or mapping) walked
    PyObject* items;  // owned: list of (key, value) for a mapping that is not a dict
    Py_ssize_t pos, size;
    uint32_t node, entry;
    size_t begin, cur, end;  // the dict's entries, read ahead into entries_
    uint64_t callbacks;  // callbacks_ when they were read (see next_entry)
  };
  // A dict's entry read ahead: borrowed references, valid while no Python code runs.
  struct Entry {
    PyObject* key;
    PyObject* value;
    Py_ssize_t pos;  // PyDict_Next's position after it
  };
  struct TensorRef {
    py::object tensor;
    uint32_t node;
  };
  struct Rejected {
    Py_ssize_t info;
    const char* reason;
    py::object path;  // the path object itself: the info's nodes are undone
    std::string detail;
  };
  enum Status { kOk, kReject, kRaise };

  Status walk_info(PyObject* info, Py_ssize_t index);
  Status walk_mapping(PyObject* info);
  Status push(PyObject* map, uint32_t node);
  Status child_of(uint32_t frame_index, PyObject* key, uint32_t* child);
  Status leaf(uint32_t node, PyObject* v, py::object& hold, bool* is_mapping);
  Status number(uint32_t node, PyObject* v);
  Status array(uint32_t node, PyObject* v, bool helped);
  Status sequence(uint32_t node, PyObject* v);
  Status helper_array(uint32_t node, PyObject* v);
  Status kind_of(PyObject* v, uint32_t node, int* kind);
  Status reject(const char* reason, uint32_t node, std::string detail = std::string());
  Status python_error(uint32_t node, const char* reason);
  bool unchanged();
  void clear_stack();
  void pop_frame();

  uint32_t find_child(uint32_t parent, PyObject* key, Py_hash_t hash) const;
  uint32_t add_child(uint32_t parent, PyObject* key, Py_hash_t hash);
  void index_node(uint32_t node);
  void rebuild_index();
  int64_t key_of(uint32_t node);
  // The hot path: a column's first use in an info is logged (for undo), later uses
  // cost a compare.
  Column& touch(int64_t key) {
    Column& c = columns_[static_cast<size_t>(key)];
    if (c.info != info_) first_touch(key, c);
    return c;
  }
  void first_touch(int64_t key, Column& c);
  double* reserve(uint32_t node, int64_t n);
  void put(uint32_t node, double x) {
    const int64_t k = nodes_[node].key_id;
    Column& c = touch(k >= 0 ? k : key_of(node));
    if (c.open_used < c.open_cap) {
      arena_[c.open_start + c.open_used++] = x;
      ++c.written;
    } else {
      *reserve(node, 1) = x;
    }
  }
  uint32_t slow_child(uint32_t parent, uint32_t position, PyObject* key, Py_hash_t hash);
  void add_tensor(uint32_t node, PyObject* tensor);
  void skip(uint32_t node);
  void grow_arena(int64_t need);
  void close_chunk(Column& c);
  void reset_call();
  void drop_nodes_from(size_t mark);
  void drop_keys_from(size_t mark);

  py::object classify_type_, leaf_array_;
  py::dict ids_;
  py::list names_;
  std::vector<Node> nodes_;
  std::vector<uint32_t> slots_;  // open-addressing index: (parent, key) -> node
  size_t slots_used_ = 0;
  std::vector<Column> columns_;  // by key id
  // Type -> leaf kind, asked once per type. Keyed by pointer (a dict keyed by type
  // objects could run a metaclass's __eq__); the types are held so no address is reused.
  std::unordered_map<PyTypeObject*, int> type_kinds_;
  std::vector<py::object> type_refs_;

  // Value buffers handed to numpy come back here when their array dies (at
  // RolloutStats.clear()): the next call writes into memory that is already mapped.
  // Measured: a fresh 1.9 MB buffer per call cost ~440 page faults, ~0.6 ms here.
  struct BufferPool {
    std::vector<std::pair<double*, int64_t>> buffers;  // (buffer, capacity in doubles)
    double* take(int64_t need, int64_t* cap);
    void give(double* buffer, int64_t cap);
    ~BufferPool();
  };
  std::shared_ptr<BufferPool> pool_ = std::make_shared<BufferPool>();

  // This call's state.
  double* arena_ = nullptr;
  int64_t arena_used_ = 0, arena_cap_ = 0, last_total_ = 0;
  std::vector<int64_t> touched_;
  std::vector<TensorRef> tensors_;
  std::vector<uint32_t> skipped_;
  std::vector<Rejected> rejected_;
  std::vector<Frame> stack_;
  std::vector<Entry> entries_;
  uint64_t callbacks_ = 0;  // times Python code may have run during the walk
  PyTypeObject* array_type_ = nullptr;  // numpy.ndarray, once met (for prefetching)
  Py_ssize_t info_index_ = 0;
  uint64_t call_ = 0, info_ = 0, period_ = 1;
  bool busy_ = false, walked_ = false;
};

}  // namespace cpython
}  // namespace fusedstats
