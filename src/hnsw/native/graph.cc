// vectorseal's binding of hnswlib (the headers shipped inside the hnswlib-node package, see binding.gyp).
//
// What hnswlib-node does not offer and the store needs: a batch of points added
// on several threads inside N-API async work (the JS thread stays free), the
// graph serialized into and read from memory in exactly hnswlib's saveIndex
// format (no staging file), search results as typed arrays and a filter given
// as a bitmap of allowed labels tested here (no JS call per candidate).
//
// Errors carry a `code` the TypeScript wrapper maps to typed errors:
//   BUSY    a call that is unsafe while a batch or a load runs on this graph
//   FORMAT  a serialized graph that does not describe a well-formed graph
//   ARG     a wrong argument (type, length, capacity)
//   HNSW    hnswlib refused (its own message)

#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "hnswlib.h"

namespace {

using Hnsw = hnswlib::HierarchicalNSW<float>;
using hnswlib::labeltype;
using hnswlib::linklistsizeint;
using hnswlib::tableint;

// The header saveIndex writes: 6 size_t, an int, a tableint, 3 size_t, a double, a size_t.
constexpr size_t kHeaderSize = 6 * 8 + 4 + 4 + 3 * 8 + 8 + 8;

[[noreturn]] void Fail(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  throw e;
}

struct FormatError {
  std::string why;
};

void Normalize(float* v, size_t dim) {
  float s = 0.0f;
  for (size_t i = 0; i < dim; i++) s += v[i] * v[i];
  const float norm = std::sqrt(std::fabs(s));
  if (norm > 0.0f)
    for (size_t i = 0; i < dim; i++) v[i] /= norm;
}

// A bounds-checked cursor over the serialized bytes: every read is checked against what is left.
struct Cursor {
  const uint8_t* p;
  size_t n;
  size_t off = 0;
  template <typename T>
  T pod() {
    if (n - off < sizeof(T)) throw FormatError{"truncated"};
    T v;
    std::memcpy(&v, p + off, sizeof(T));
    off += sizeof(T);
    return v;
  }
  const uint8_t* take(size_t len) {
    if (n - off < len) throw FormatError{"truncated"};
    const uint8_t* at = p + off;
    off += len;
    return at;
  }
};

// Reads hnswlib's saveIndex format from memory into a new graph, checking every size, count, level and
// neighbour id against the buffer and the header, so that a search over the result never reads out of bounds.
std::unique_ptr<Hnsw> LoadFromMemory(hnswlib::SpaceInterface<float>* space, const uint8_t* bytes, size_t length) {
  Cursor c{bytes, length};
  const size_t offsetLevel0 = c.pod<size_t>();
  const size_t maxElements = c.pod<size_t>();
  const size_t count = c.pod<size_t>();
  const size_t sizePer = c.pod<size_t>();
  const size_t labelOffset = c.pod<size_t>();
  const size_t offsetData = c.pod<size_t>();
  const int maxLevel = c.pod<int>();
  const tableint enter = c.pod<tableint>();
  const size_t maxM = c.pod<size_t>();
  const size_t maxM0 = c.pod<size_t>();
  const size_t M = c.pod<size_t>();
  const double mult = c.pod<double>();
  const size_t efConstruction = c.pod<size_t>();

  const size_t dataSize = space->get_data_size();
  if (M < 1 || M > 10000 || maxM != M || maxM0 != 2 * M) throw FormatError{"M does not match its level sizes"};
  const size_t links0 = maxM0 * sizeof(tableint) + sizeof(linklistsizeint);
  const size_t linksPer = maxM * sizeof(tableint) + sizeof(linklistsizeint);
  if (offsetLevel0 != 0 || offsetData != links0 || labelOffset != links0 + dataSize || sizePer != labelOffset + sizeof(labeltype))
    throw FormatError{"the record layout does not match the dimension and M"};
  if (count > maxElements) throw FormatError{"more records than capacity"};
  if (count > 0xffffffffull) throw FormatError{"too many records"};
  if (!(std::isfinite(mult) && mult > 0.0)) throw FormatError{"bad level factor"};
  if (efConstruction < 1 || efConstruction > (1u << 24)) throw FormatError{"bad efConstruction"};
  if (count > 0 && (enter >= count || maxLevel < 0 || maxLevel > 1000)) throw FormatError{"bad entry point or level"};
  if (count > (length - c.off) / sizePer) throw FormatError{"truncated level 0"};
  const uint8_t* level0 = c.take(count * sizePer);

  // First pass: the upper levels' sizes (each element's level), within the buffer.
  std::vector<int> levels(count, 0);
  std::vector<const uint8_t*> upper(count, nullptr);
  for (size_t i = 0; i < count; i++) {
    const uint32_t size = c.pod<uint32_t>();
    if (size == 0) continue;
    if (size % linksPer != 0) throw FormatError{"an upper link list has a partial level"};
    const size_t lv = size / linksPer;
    if (lv > static_cast<size_t>(maxLevel)) throw FormatError{"an element above the top level"};
    levels[i] = static_cast<int>(lv);
    upper[i] = c.take(size);
  }
  if (c.off != length) throw FormatError{"trailing bytes"};
  if (count > 0 && levels[enter] != maxLevel) throw FormatError{"the entry point is not on the top level"};

  // Second pass: every neighbour id in range, on a level its neighbour has, and no list longer than allowed.
  auto checkList = [&](const uint8_t* list, size_t maxLinks, int level) {
    uint16_t n;
    std::memcpy(&n, list, sizeof(n));
    if (n > maxLinks) throw FormatError{"a link list is longer than M allows"};
    for (size_t j = 0; j < n; j++) {
      tableint id;
      std::memcpy(&id, list + sizeof(linklistsizeint) + j * sizeof(tableint), sizeof(id));
      if (id >= count || levels[id] < level) throw FormatError{"a link to no element on its level"};
    }
  };
  std::vector<uint8_t> seen;
  for (size_t i = 0; i < count; i++) {
    const uint8_t* rec = level0 + i * sizePer;
    checkList(rec, maxM0, 0);
    for (int l = 1; l <= levels[i]; l++) checkList(upper[i] + (l - 1) * linksPer, maxM, l);
  }

  // Built aside, then handed to the graph whole: a failure above leaves nothing half-assigned.
  const size_t capacity = std::max<size_t>(count, 1);
  char* data = static_cast<char*>(std::malloc(capacity * sizePer));
  char** lists = static_cast<char**>(std::calloc(capacity, sizeof(char*)));
  if (data == nullptr || lists == nullptr) {
    std::free(data);
    std::free(lists);
    throw std::bad_alloc();
  }
  std::memcpy(data, level0, count * sizePer);
  std::unique_ptr<Hnsw> g(new Hnsw(space));
  g->data_level0_memory_ = data;
  g->linkLists_ = lists;
  g->element_levels_ = std::vector<int>(capacity, 0);
  for (size_t i = 0; i < count; i++) {
    if (levels[i] == 0) continue;
    const size_t size = levels[i] * linksPer;
    lists[i] = static_cast<char*>(std::malloc(size));
    if (lists[i] == nullptr) throw std::bad_alloc();  // the destructor frees what was assigned so far
    std::memcpy(lists[i], upper[i], size);
    g->element_levels_[i] = levels[i];
    g->cur_element_count = i + 1;
  }
  g->cur_element_count = count;
  g->max_elements_ = capacity;
  g->size_data_per_element_ = sizePer;
  g->label_offset_ = labelOffset;
  g->offsetData_ = offsetData;
  g->offsetLevel0_ = offsetLevel0;
  g->maxlevel_ = maxLevel;
  g->enterpoint_node_ = enter;
  g->maxM_ = maxM;
  g->maxM0_ = maxM0;
  g->M_ = M;
  g->mult_ = mult;
  g->revSize_ = 1.0 / mult;
  g->ef_construction_ = efConstruction;
  g->ef_ = 10;
  g->data_size_ = dataSize;
  g->fstdistfunc_ = space->get_dist_func();
  g->dist_func_param_ = space->get_dist_func_param();
  g->size_links_per_element_ = linksPer;
  g->size_links_level0_ = links0;
  std::vector<std::mutex>(capacity).swap(g->link_list_locks_);
  std::vector<std::mutex>(Hnsw::MAX_LABEL_OPERATION_LOCKS).swap(g->label_op_locks_);
  g->visited_list_pool_.reset(new hnswlib::VisitedListPool(1, capacity));
  g->num_deleted_ = 0;
  for (size_t i = 0; i < count; i++) {
    const labeltype label = g->getExternalLabel(static_cast<tableint>(i));
    if (!g->label_lookup_.emplace(label, static_cast<tableint>(i)).second) throw FormatError{"a label repeats"};
    if (g->isMarkedDeleted(static_cast<tableint>(i))) g->num_deleted_ += 1;
  }
  return g;
}

size_t SerializedSize(const Hnsw& g) {
  return g.indexFileSize();
}

// Writes exactly what saveIndex writes, in its order, into `out` (at least SerializedSize bytes).
size_t SerializeInto(const Hnsw& g, uint8_t* out) {
  size_t off = 0;
  auto put = [&](const void* v, size_t len) {
    std::memcpy(out + off, v, len);
    off += len;
  };
  const size_t count = g.cur_element_count;
  put(&g.offsetLevel0_, sizeof(g.offsetLevel0_));
  put(&g.max_elements_, sizeof(g.max_elements_));
  put(&count, sizeof(count));
  put(&g.size_data_per_element_, sizeof(g.size_data_per_element_));
  put(&g.label_offset_, sizeof(g.label_offset_));
  put(&g.offsetData_, sizeof(g.offsetData_));
  put(&g.maxlevel_, sizeof(g.maxlevel_));
  put(&g.enterpoint_node_, sizeof(g.enterpoint_node_));
  put(&g.maxM_, sizeof(g.maxM_));
  put(&g.maxM0_, sizeof(g.maxM0_));
  put(&g.M_, sizeof(g.M_));
  put(&g.mult_, sizeof(g.mult_));
  put(&g.ef_construction_, sizeof(g.ef_construction_));
  put(g.data_level0_memory_, count * g.size_data_per_element_);
  for (size_t i = 0; i < count; i++) {
    const unsigned int size = g.element_levels_[i] > 0 ? g.size_links_per_element_ * g.element_levels_[i] : 0;
    put(&size, sizeof(size));
    if (size) put(g.linkLists_[i], size);
  }
  return off;
}

class BitmapFilter : public hnswlib::BaseFilterFunctor {
 public:
  BitmapFilter(const uint8_t* bits, size_t n) : bits_(bits), n_(n) {}
  bool operator()(labeltype label) override { return label < n_ && bits_[label] != 0; }

 private:
  const uint8_t* bits_;
  size_t n_;
};

// A JS predicate per candidate (the store's metadata filters): a throwing predicate refuses every later candidate
// and its exception is rethrown once hnswlib has returned (never unwound through hnswlib's frames).
class CallbackFilter : public hnswlib::BaseFilterFunctor {
 public:
  CallbackFilter(Napi::Env env, Napi::Function fn) : env_(env), fn_(fn) {}
  bool operator()(labeltype label) override {
    if (failed_) return false;
    try {
      Napi::Value r = fn_.Call({Napi::Number::New(env_, static_cast<double>(label))});
      return r.ToBoolean().Value();
    } catch (const Napi::Error& e) {
      failed_ = true;
      error_ = Napi::Persistent(e.Value());
      return false;
    }
  }
  void rethrow() {
    if (failed_) throw Napi::Error(env_, error_.Value());
  }

 private:
  Napi::Env env_;
  Napi::Function fn_;
  bool failed_ = false;
  Napi::ObjectReference error_;
};

class Graph : public Napi::ObjectWrap<Graph> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Graph",
                       {
                           InstanceMethod("initIndex", &Graph::InitIndex),
                           InstanceMethod("addPoint", &Graph::AddPoint),
                           InstanceMethod("addBatch", &Graph::AddBatch),
                           InstanceMethod("searchKnn", &Graph::SearchKnn),
                           InstanceMethod("markDelete", &Graph::MarkDelete),
                           InstanceMethod("unmarkDelete", &Graph::UnmarkDelete),
                           InstanceMethod("getPoint", &Graph::GetPoint),
                           InstanceMethod("getIdsList", &Graph::GetIdsList),
                           InstanceMethod("getCurrentCount", &Graph::GetCurrentCount),
                           InstanceMethod("getMaxElements", &Graph::GetMaxElements),
                           InstanceMethod("resizeIndex", &Graph::ResizeIndex),
                           InstanceMethod("setEf", &Graph::SetEf),
                           InstanceMethod("serializedSize", &Graph::SerializedSizeJs),
                           InstanceMethod("serializeInto", &Graph::SerializeIntoJs),
                           InstanceMethod("deserialize", &Graph::Deserialize),
                           InstanceMethod("busy", &Graph::Busy),
                           InstanceMethod("free", &Graph::Free),
                       });
  }

  Graph(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Graph>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) Fail(env, "ARG", "expected (space, dim)");
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const double dim = info[1].As<Napi::Number>().DoubleValue();
    if (!(dim >= 1 && dim <= 65536 && std::floor(dim) == dim)) Fail(env, "ARG", "dim must be an integer in 1..65536");
    dim_ = static_cast<size_t>(dim);
    if (name == "l2") {
      space_.reset(new hnswlib::L2Space(dim_));
    } else if (name == "ip" || name == "cosine") {
      space_.reset(new hnswlib::InnerProductSpace(dim_));
      normalize_ = name == "cosine";
    } else {
      Fail(env, "ARG", "space must be l2, ip or cosine");
    }
  }

  // Called by the async work when it ends, on the JS thread.
  void EndWork() { busy_ = false; }
  size_t dim() const { return dim_; }
  bool normalize() const { return normalize_; }
  Hnsw* index() { return index_.get(); }
  hnswlib::SpaceInterface<float>* space() { return space_.get(); }
  void Replace(std::unique_ptr<Hnsw> next) { index_ = std::move(next); }

 private:
  std::unique_ptr<hnswlib::SpaceInterface<float>> space_;
  std::unique_ptr<Hnsw> index_;
  size_t dim_ = 0;
  bool normalize_ = false;
  // Set on the JS thread while a batch or a load runs on the thread pool; only the JS thread reads it.
  bool busy_ = false;

  friend class BatchWork;
  friend class LoadWork;

  void Idle(Napi::Env env, const char* what) {
    if (busy_) Fail(env, "BUSY", std::string(what) + " is refused while a batch or a load runs on this graph");
  }
  Hnsw* Ready(Napi::Env env) {
    if (!index_) Fail(env, "ARG", "the graph has no index yet (initIndex or deserialize first)");
    return index_.get();
  }
  static size_t Count(Napi::Env env, const Napi::Value& v, const char* what) {
    if (!v.IsNumber()) Fail(env, "ARG", std::string(what) + " must be a number");
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 4294967295.0 && std::floor(d) == d)) Fail(env, "ARG", std::string(what) + " must be an integer in 0..2^32-1");
    return static_cast<size_t>(d);
  }
  // A vector argument copied (and normalized for cosine) into `out`.
  void VectorArg(Napi::Env env, const Napi::Value& v, std::vector<float>& out) {
    out.resize(dim_);
    if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
      Napi::Float32Array a = v.As<Napi::Float32Array>();
      if (a.ElementLength() != dim_) Fail(env, "ARG", "vector has the wrong dimension");
      std::memcpy(out.data(), a.Data(), dim_ * sizeof(float));
    } else if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      if (a.Length() != dim_) Fail(env, "ARG", "vector has the wrong dimension");
      for (uint32_t i = 0; i < dim_; i++) out[i] = a.Get(i).As<Napi::Number>().FloatValue();
    } else {
      Fail(env, "ARG", "vector must be a Float32Array or an array of numbers");
    }
    if (normalize_) Normalize(out.data(), dim_);
  }

  Napi::Value InitIndex(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "initIndex");
    const size_t maxElements = Count(env, info[0], "maxElements");
    const size_t m = Count(env, info[1], "M");
    const size_t efc = Count(env, info[2], "efConstruction");
    const size_t seed = info.Length() > 3 ? Count(env, info[3], "randomSeed") : 100;
    if (m < 2 || m > 10000) Fail(env, "ARG", "M must be in 2..10000");
    try {
      index_.reset(new Hnsw(space_.get(), std::max<size_t>(maxElements, 1), m, efc, seed));
    } catch (const std::exception& e) {
      Fail(env, "HNSW", e.what());
    }
    return env.Undefined();
  }

  Napi::Value AddPoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Refused during a batch: the batch has counted on the free capacity it found.
    Idle(env, "addPoint");
    Hnsw* g = Ready(env);
    std::vector<float> v;
    VectorArg(env, info[0], v);
    const size_t label = Count(env, info[1], "label");
    try {
      g->addPoint(v.data(), label);
    } catch (const std::exception& e) {
      Fail(env, "HNSW", e.what());
    }
    return env.Undefined();
  }

  Napi::Value AddBatch(const Napi::CallbackInfo& info);
  Napi::Value Deserialize(const Napi::CallbackInfo& info);

  Napi::Value SearchKnn(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Allowed during a batch: hnswlib's searchKnn runs beside concurrent addPoint calls.
    Hnsw* g = Ready(env);
    std::vector<float> q;
    VectorArg(env, info[0], q);
    const size_t k = Count(env, info[1], "k");
    if (k > g->max_elements_) Fail(env, "ARG", "k is larger than the graph's capacity");
    std::unique_ptr<hnswlib::BaseFilterFunctor> filter;
    CallbackFilter* callback = nullptr;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      if (info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
        Napi::Uint8Array bits = info[2].As<Napi::Uint8Array>();
        filter.reset(new BitmapFilter(bits.Data(), bits.ElementLength()));
      } else if (info[2].IsFunction()) {
        callback = new CallbackFilter(env, info[2].As<Napi::Function>());
        filter.reset(callback);
      } else {
        Fail(env, "ARG", "filter must be a Uint8Array bitmap of labels or a function");
      }
    }
    std::priority_queue<std::pair<float, labeltype>> found;
    try {
      found = g->searchKnn(q.data(), k, filter.get());
    } catch (const std::exception& e) {
      Fail(env, "HNSW", e.what());
    }
    if (callback) callback->rethrow();
    const size_t n = found.size();
    Napi::Uint32Array neighbors = Napi::Uint32Array::New(env, n);
    Napi::Float32Array distances = Napi::Float32Array::New(env, n);
    for (size_t i = n; i-- > 0;) {
      neighbors[i] = static_cast<uint32_t>(found.top().second);
      distances[i] = found.top().first;
      found.pop();
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("neighbors", neighbors);
    out.Set("distances", distances);
    return out;
  }

  Napi::Value MarkDelete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Refused during a batch: the delete mark shares its word with link counts the batch threads write.
    Idle(env, "markDelete");
    Hnsw* g = Ready(env);
    const size_t label = Count(env, info[0], "label");
    try {
      g->markDelete(label);
    } catch (const std::exception& e) {
      Fail(env, "HNSW", e.what());
    }
    return env.Undefined();
  }

  Napi::Value UnmarkDelete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "unmarkDelete");
    Hnsw* g = Ready(env);
    const size_t label = Count(env, info[0], "label");
    try {
      g->unmarkDelete(label);
    } catch (const std::exception& e) {
      Fail(env, "HNSW", e.what());
    }
    return env.Undefined();
  }

  Napi::Value GetPoint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Hnsw* g = Ready(env);
    const size_t label = Count(env, info[0], "label");
    std::vector<float> v;
    try {
      v = g->getDataByLabel<float>(label);
    } catch (const std::exception& e) {
      Fail(env, "HNSW", e.what());
    }
    Napi::Float32Array out = Napi::Float32Array::New(env, v.size());
    std::memcpy(out.Data(), v.data(), v.size() * sizeof(float));
    return out;
  }

  Napi::Value GetIdsList(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    // Refused during a batch: the label table is read without hnswlib's lock.
    Idle(env, "getIdsList");
    if (!index_) return Napi::Array::New(env, 0);
    Napi::Array ids = Napi::Array::New(env, index_->label_lookup_.size());
    uint32_t i = 0;
    for (const auto& kv : index_->label_lookup_) ids.Set(i++, Napi::Number::New(env, static_cast<double>(kv.first)));
    return ids;
  }

  Napi::Value GetCurrentCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), index_ ? static_cast<double>(index_->cur_element_count) : 0);
  }

  Napi::Value GetMaxElements(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), index_ ? static_cast<double>(index_->max_elements_) : 0);
  }

  Napi::Value ResizeIndex(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "resizeIndex");
    Hnsw* g = Ready(env);
    const size_t n = Count(env, info[0], "maxElements");
    try {
      g->resizeIndex(std::max<size_t>(n, 1));
    } catch (const std::exception& e) {
      Fail(env, "HNSW", e.what());
    }
    return env.Undefined();
  }

  Napi::Value SetEf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Hnsw* g = Ready(env);
    g->setEf(std::max<size_t>(Count(env, info[0], "ef"), 1));
    return env.Undefined();
  }

  Napi::Value SerializedSizeJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "serializedSize");
    return Napi::Number::New(env, static_cast<double>(SerializedSize(*Ready(env))));
  }

  Napi::Value SerializeIntoJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "serializeInto");
    Hnsw* g = Ready(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      Fail(env, "ARG", "serializeInto expects a Uint8Array");
    Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
    const size_t need = SerializedSize(*g);
    if (buf.ElementLength() < need) Fail(env, "ARG", "the buffer is smaller than serializedSize()");
    return Napi::Number::New(env, static_cast<double>(SerializeInto(*g, buf.Data())));
  }

  Napi::Value Busy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_); }

  Napi::Value Free(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "free");
    index_.reset();
    return env.Undefined();
  }
};

// Adds `count` points (labels first..first+count-1) on `threads` std::threads, off the JS thread. The graph and
// the vectors are held by references for the whole work, so neither is collected while the threads read them.
class BatchWork : public Napi::AsyncWorker {
 public:
  BatchWork(Napi::Env env, Graph* graph, Napi::Object self, Napi::Float32Array vectors, size_t first, size_t count, size_t threads)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), graph_(graph), first_(first), count_(count),
        threads_(threads), data_(vectors.Data()) {
    self_ = Napi::Persistent(self);
    vectors_ = Napi::Persistent(vectors.As<Napi::Object>());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    Hnsw* g = graph_->index();
    const size_t dim = graph_->dim();
    const bool normalize = graph_->normalize();
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::vector<std::string> errors(threads_);
    auto run = [&](size_t t) {
      std::vector<float> v(dim);
      try {
        for (size_t i; !failed && (i = next.fetch_add(1)) < count_;) {
          const float* p = data_ + i * dim;
          if (normalize) {
            std::memcpy(v.data(), p, dim * sizeof(float));
            Normalize(v.data(), dim);
            p = v.data();
          }
          g->addPoint(p, first_ + i);
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
        failed = true;
      }
      std::fill(v.begin(), v.end(), 0.0f);
    };
    std::vector<std::thread> pool;
    try {
      for (size_t t = 1; t < threads_; t++) pool.emplace_back(run, t);
    } catch (const std::exception& e) {
      // No further thread could start: the ones running and this one finish the batch.
    }
    run(0);
    for (auto& th : pool) th.join();
    for (const auto& e : errors)
      if (!e.empty()) {
        SetError(e);
        return;
      }
  }

  void OnOK() override {
    graph_->EndWork();
    deferred_.Resolve(Env().Undefined());
  }

  void OnError(const Napi::Error& e) override {
    graph_->EndWork();
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("code", Napi::String::New(Env(), "HNSW"));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Graph* graph_;
  Napi::ObjectReference self_;
  Napi::ObjectReference vectors_;
  size_t first_, count_, threads_;
  const float* data_;
};

Napi::Value Graph::AddBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Idle(env, "addBatch");
  Hnsw* g = Ready(env);
  if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    Fail(env, "ARG", "addBatch expects (Float32Array, firstLabel, threads)");
  Napi::Float32Array vectors = info[0].As<Napi::Float32Array>();
  if (vectors.ElementLength() % dim_ != 0) Fail(env, "ARG", "the vectors are not a whole number of points");
  const size_t count = vectors.ElementLength() / dim_;
  const size_t first = Count(env, info[1], "firstLabel");
  const size_t threads = Count(env, info[2], "threads");
  if (threads < 1 || threads > 64) Fail(env, "ARG", "threads must be in 1..64");
  if (count > g->max_elements_ - g->cur_element_count) Fail(env, "ARG", "the batch does not fit the graph's capacity");
  if (first + count > 4294967296ull) Fail(env, "ARG", "labels past 2^32");
  BatchWork* work = new BatchWork(env, this, Value(), vectors, first, count, std::min(threads, std::max<size_t>(count, 1)));
  busy_ = true;
  work->Queue();
  return work->Promise();
}

// Reads a serialized graph on the thread pool; the graph takes it only if every check passed.
class LoadWork : public Napi::AsyncWorker {
 public:
  LoadWork(Napi::Env env, Graph* graph, Napi::Object self, Napi::Uint8Array bytes)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), graph_(graph), data_(bytes.Data()),
        length_(bytes.ElementLength()) {
    self_ = Napi::Persistent(self);
    bytes_ = Napi::Persistent(bytes.As<Napi::Object>());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      loaded_ = LoadFromMemory(graph_->space(), data_, length_);
    } catch (const FormatError& e) {
      format_ = true;
      SetError(e.why);
    } catch (const std::bad_alloc&) {
      SetError("out of memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    graph_->EndWork();
    graph_->Replace(std::move(loaded_));
    deferred_.Resolve(Env().Undefined());
  }

  void OnError(const Napi::Error& e) override {
    graph_->EndWork();
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("code", Napi::String::New(Env(), format_ ? "FORMAT" : "HNSW"));
    deferred_.Reject(err.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Graph* graph_;
  Napi::ObjectReference self_;
  Napi::ObjectReference bytes_;
  const uint8_t* data_;
  size_t length_;
  std::unique_ptr<Hnsw> loaded_;
  bool format_ = false;
};

Napi::Value Graph::Deserialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Idle(env, "deserialize");
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    Fail(env, "ARG", "deserialize expects a Uint8Array");
  if (info[0].As<Napi::Uint8Array>().ElementLength() < kHeaderSize) {
    Napi::Error e = Napi::Error::New(env, "truncated");
    e.Set("code", Napi::String::New(env, "FORMAT"));
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
  LoadWork* work = new LoadWork(env, this, Value(), info[0].As<Napi::Uint8Array>());
  busy_ = true;
  work->Queue();
  return work->Promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Graph", Graph::Define(env));
  exports.Set("headerSize", Napi::Number::New(env, static_cast<double>(kHeaderSize)));
  return exports;
}

}  // namespace

NODE_API_MODULE(vectorseal_hnsw, Init)
