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
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
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

// A max-heap of (distance, label) as { neighbors, distances }, closest first; empties the heap.
Napi::Object HitsObject(Napi::Env env, std::priority_queue<std::pair<float, labeltype>>& heap) {
  const size_t n = heap.size();
  Napi::Uint32Array neighbors = Napi::Uint32Array::New(env, n);
  Napi::Float32Array distances = Napi::Float32Array::New(env, n);
  for (size_t i = n; i-- > 0;) {
    neighbors[i] = static_cast<uint32_t>(heap.top().second);
    distances[i] = heap.top().first;
    heap.pop();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("neighbors", neighbors);
  out.Set("distances", distances);
  return out;
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

// Reads hnswlib's saveIndex format, pushed in pieces of any size, into memory laid out as hnswlib holds it (each
// byte is copied once, into its final place). Every size and count is checked against the total the caller
// declared before anything is allocated for it; finish() checks every level and neighbour id, so that a search
// over the result never reads out of bounds, and only then builds the graph.
class StreamLoad {
 public:
  StreamLoad(hnswlib::SpaceInterface<float>* space, size_t total) : space_(space), total_(total) {}
  ~StreamLoad() {
    std::free(level0_);
    for (char* p : lists_) std::free(p);
  }
  StreamLoad(const StreamLoad&) = delete;
  StreamLoad& operator=(const StreamLoad&) = delete;

  void push(const uint8_t* p, size_t n) {
    if (n > total_ - received_) throw FormatError{"trailing bytes"};
    received_ += n;
    while (n > 0) {
      size_t k = 0;
      switch (state_) {
        case kHeader:
          k = std::min(n, kHeaderSize - have_);
          std::memcpy(head_ + have_, p, k);
          have_ += k;
          consumed_ += k;
          if (have_ == kHeaderSize) parseHeader();
          break;
        case kLevel0:
          k = std::min(n, count_ * sizePer_ - have_);
          std::memcpy(level0_ + have_, p, k);
          have_ += k;
          consumed_ += k;
          if (have_ == count_ * sizePer_) nextElement(true);
          break;
        case kSize:
          k = std::min(n, sizeof(uint32_t) - have_);
          std::memcpy(sizeBytes_ + have_, p, k);
          have_ += k;
          consumed_ += k;
          if (have_ == sizeof(uint32_t)) parseSize();
          break;
        case kList:
          k = std::min(n, listSize_ - have_);
          std::memcpy(lists_[elem_] + have_, p, k);
          have_ += k;
          consumed_ += k;
          if (have_ == listSize_) nextElement(false);
          break;
        case kDone:
          throw FormatError{"trailing bytes"};
      }
      p += k;
      n -= k;
    }
  }

  std::unique_ptr<Hnsw> finish() {
    if (state_ != kDone || received_ != total_) throw FormatError{"truncated"};
    if (count_ > 0 && levels_[enter_] != maxLevel_) throw FormatError{"the entry point is not on the top level"};
    // Every neighbour id in range, on a level its neighbour has, and no list longer than allowed.
    auto checkList = [&](const char* list, size_t maxLinks, int level) {
      uint16_t n;
      std::memcpy(&n, list, sizeof(n));
      if (n > maxLinks) throw FormatError{"a link list is longer than M allows"};
      for (size_t j = 0; j < n; j++) {
        tableint id;
        std::memcpy(&id, list + sizeof(linklistsizeint) + j * sizeof(tableint), sizeof(id));
        if (id >= count_ || levels_[id] < level) throw FormatError{"a link to no element on its level"};
      }
    };
    for (size_t i = 0; i < count_; i++) {
      checkList(level0_ + i * sizePer_, maxM0_, 0);
      for (int l = 1; l <= levels_[i]; l++) checkList(lists_[i] + (l - 1) * linksPer_, maxM_, l);
    }
    const size_t capacity = std::max<size_t>(count_, 1);
    char** lists = static_cast<char**>(std::calloc(capacity, sizeof(char*)));
    if (lists == nullptr) throw std::bad_alloc();
    std::unique_ptr<Hnsw> g(new Hnsw(space_));
    // From here the graph owns the memory (its destructor frees level 0 and the lists of elements with levels).
    g->data_level0_memory_ = level0_;
    level0_ = nullptr;
    g->linkLists_ = lists;
    g->element_levels_ = std::vector<int>(capacity, 0);
    for (size_t i = 0; i < count_; i++) {
      lists[i] = lists_[i];
      lists_[i] = nullptr;
      g->element_levels_[i] = levels_[i];
    }
    g->cur_element_count = count_;
    g->max_elements_ = capacity;
    g->size_data_per_element_ = sizePer_;
    g->label_offset_ = labelOffset_;
    g->offsetData_ = offsetData_;
    g->offsetLevel0_ = 0;
    g->maxlevel_ = maxLevel_;
    g->enterpoint_node_ = enter_;
    g->maxM_ = maxM_;
    g->maxM0_ = maxM0_;
    g->M_ = M_;
    g->mult_ = mult_;
    g->revSize_ = 1.0 / mult_;
    g->ef_construction_ = efConstruction_;
    g->ef_ = 10;
    g->data_size_ = space_->get_data_size();
    g->fstdistfunc_ = space_->get_dist_func();
    g->dist_func_param_ = space_->get_dist_func_param();
    g->size_links_per_element_ = linksPer_;
    g->size_links_level0_ = maxM0_ * sizeof(tableint) + sizeof(linklistsizeint);
    std::vector<std::mutex>(capacity).swap(g->link_list_locks_);
    std::vector<std::mutex>(Hnsw::MAX_LABEL_OPERATION_LOCKS).swap(g->label_op_locks_);
    g->visited_list_pool_.reset(new hnswlib::VisitedListPool(1, capacity));
    g->num_deleted_ = 0;
    g->label_lookup_.reserve(count_);
    for (size_t i = 0; i < count_; i++) {
      const labeltype label = g->getExternalLabel(static_cast<tableint>(i));
      if (!g->label_lookup_.emplace(label, static_cast<tableint>(i)).second) throw FormatError{"a label repeats"};
      if (g->isMarkedDeleted(static_cast<tableint>(i))) g->num_deleted_ += 1;
    }
    return g;
  }

 private:
  enum State { kHeader, kLevel0, kSize, kList, kDone };
  hnswlib::SpaceInterface<float>* space_;
  size_t total_;
  size_t received_ = 0;
  size_t consumed_ = 0;
  State state_ = kHeader;
  size_t have_ = 0;
  uint8_t head_[kHeaderSize];
  uint8_t sizeBytes_[sizeof(uint32_t)];
  size_t count_ = 0, sizePer_ = 0, labelOffset_ = 0, offsetData_ = 0, maxM_ = 0, maxM0_ = 0, M_ = 0, efConstruction_ = 0;
  size_t linksPer_ = 0, listSize_ = 0, elem_ = 0;
  int maxLevel_ = 0;
  tableint enter_ = 0;
  double mult_ = 0;
  char* level0_ = nullptr;
  std::vector<char*> lists_;
  std::vector<int> levels_;

  void parseHeader() {
    Cursor c{head_, kHeaderSize};
    const size_t offsetLevel0 = c.pod<size_t>();
    const size_t maxElements = c.pod<size_t>();
    count_ = c.pod<size_t>();
    sizePer_ = c.pod<size_t>();
    labelOffset_ = c.pod<size_t>();
    offsetData_ = c.pod<size_t>();
    maxLevel_ = c.pod<int>();
    enter_ = c.pod<tableint>();
    maxM_ = c.pod<size_t>();
    maxM0_ = c.pod<size_t>();
    M_ = c.pod<size_t>();
    mult_ = c.pod<double>();
    efConstruction_ = c.pod<size_t>();
    const size_t dataSize = space_->get_data_size();
    if (M_ < 1 || M_ > 10000 || maxM_ != M_ || maxM0_ != 2 * M_) throw FormatError{"M does not match its level sizes"};
    const size_t links0 = maxM0_ * sizeof(tableint) + sizeof(linklistsizeint);
    linksPer_ = maxM_ * sizeof(tableint) + sizeof(linklistsizeint);
    if (offsetLevel0 != 0 || offsetData_ != links0 || labelOffset_ != links0 + dataSize || sizePer_ != labelOffset_ + sizeof(labeltype))
      throw FormatError{"the record layout does not match the dimension and M"};
    if (count_ > maxElements) throw FormatError{"more records than capacity"};
    if (count_ > 0xffffffffull) throw FormatError{"too many records"};
    if (!(std::isfinite(mult_) && mult_ > 0.0)) throw FormatError{"bad level factor"};
    if (efConstruction_ < 1 || efConstruction_ > (1u << 24)) throw FormatError{"bad efConstruction"};
    if (count_ > 0 && (enter_ >= count_ || maxLevel_ < 0 || maxLevel_ > 1000)) throw FormatError{"bad entry point or level"};
    // Level 0 and one size field per record must fit what the caller declared: nothing larger is allocated.
    if (count_ > (total_ - kHeaderSize) / (sizePer_ + sizeof(uint32_t))) throw FormatError{"truncated level 0"};
    level0_ = static_cast<char*>(std::malloc(std::max<size_t>(count_, 1) * sizePer_));
    if (level0_ == nullptr) throw std::bad_alloc();
    lists_.assign(count_, nullptr);
    levels_.assign(count_, 0);
    have_ = 0;
    state_ = count_ > 0 ? kLevel0 : kDone;
  }

  void parseSize() {
    uint32_t size;
    std::memcpy(&size, sizeBytes_, sizeof(size));
    have_ = 0;
    if (size == 0) return nextElement(false);
    if (size % linksPer_ != 0) throw FormatError{"an upper link list has a partial level"};
    const size_t lv = size / linksPer_;
    if (lv > static_cast<size_t>(maxLevel_)) throw FormatError{"an element above the top level"};
    if (size > total_ - consumed_) throw FormatError{"truncated"};
    lists_[elem_] = static_cast<char*>(std::malloc(size));
    if (lists_[elem_] == nullptr) throw std::bad_alloc();
    levels_[elem_] = static_cast<int>(lv);
    listSize_ = size;
    state_ = kList;
  }

  // After level 0 (first) or one element's upper lists: on to the next size field, or done.
  void nextElement(bool first) {
    have_ = 0;
    if (!first) elem_++;
    state_ = elem_ < count_ ? kSize : kDone;
  }
};

std::unique_ptr<Hnsw> LoadFromMemory(hnswlib::SpaceInterface<float>* space, const uint8_t* bytes, size_t length) {
  StreamLoad load(space, length);
  load.push(bytes, length);
  return load.finish();
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

// Bytes [start, start + len) of what SerializeInto writes, into `out`; returns how many (fewer at the end).
size_t SerializeRange(const Hnsw& g, size_t start, uint8_t* out, size_t len) {
  size_t pos = 0;
  const size_t end = start + len;
  auto put = [&](const void* v, size_t n) {
    const size_t a = std::max(pos, start);
    const size_t b = std::min(pos + n, end);
    if (a < b) std::memcpy(out + (a - start), static_cast<const char*>(v) + (a - pos), b - a);
    pos += n;
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
  for (size_t i = 0; i < count && pos < end; i++) {
    const unsigned int size = g.element_levels_[i] > 0 ? g.size_links_per_element_ * g.element_levels_[i] : 0;
    put(&size, sizeof(size));
    if (size) put(g.linkLists_[i], size);
  }
  return std::min(pos, end) > start ? std::min(pos, end) - start : 0;
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

// One thread, started on first use and kept for the process, that runs a share of a searchEach call: a thread
// started per query cost more than the walk it took over (about 80 us against a 100 us walk). Hand-over and
// return spin briefly before sleeping on a condition variable, since a wake-up from sleep costs tens of
// microseconds, a large part of a walk. A call that finds it taken (another JS thread's) runs its share itself.
class SearchHelper {
 public:
  static SearchHelper& Get() {
    // Never destroyed: the thread waits for work until the process ends.
    static SearchHelper* helper = new SearchHelper();
    return *helper;
  }
  // Hands `fn` to the thread; false when it is taken or could not start (the caller then runs fn itself).
  bool Start(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!running_ || taken_) return false;
      taken_ = true;
      done_.store(false, std::memory_order_relaxed);
      job_ = std::move(fn);
      hasJob_.store(true, std::memory_order_release);
    }
    work_.notify_one();
    return true;
  }
  // Waits for the function handed over by Start.
  void Wait() {
    Spin(done_, std::chrono::microseconds(1000));
    if (!done_.load(std::memory_order_acquire)) {
      std::unique_lock<std::mutex> lock(mutex_);
      finished_.wait(lock, [this] { return done_.load(std::memory_order_acquire); });
    }
    std::lock_guard<std::mutex> lock(mutex_);
    taken_ = false;
  }

 private:
  SearchHelper() {
    try {
      std::thread([this] { Loop(); }).detach();
      running_ = true;
    } catch (const std::exception&) {
      running_ = false;
    }
  }
  static void Spin(const std::atomic<bool>& flag, std::chrono::microseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (unsigned i = 0; !flag.load(std::memory_order_acquire); i++) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) return;
    }
  }
  void Loop() {
    for (;;) {
      // A burst of queries hands over the next share within microseconds: wait awake for a while first.
      Spin(hasJob_, std::chrono::microseconds(200));
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        work_.wait(lock, [this] { return hasJob_.load(std::memory_order_acquire); });
        fn = std::move(job_);
        job_ = nullptr;
        hasJob_.store(false, std::memory_order_relaxed);
      }
      fn();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.store(true, std::memory_order_release);
      }
      finished_.notify_one();
    }
  }
  std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable finished_;
  std::function<void()> job_;
  std::atomic<bool> hasJob_{false};
  std::atomic<bool> done_{false};
  bool running_ = false;
  bool taken_ = false;
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
                           InstanceMethod("scanLabels", &Graph::ScanLabels),
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
                           InstanceMethod("loadBegin", &Graph::LoadBegin),
                           InstanceMethod("loadPush", &Graph::LoadPush),
                           InstanceMethod("loadEnd", &Graph::LoadEnd),
                           InstanceMethod("loadAbort", &Graph::LoadAbort),
                           InstanceMethod("serializeRange", &Graph::SerializeRangeJs),
                           InstanceMethod("copyVectors", &Graph::CopyVectors),
                           InstanceMethod("labelsDense", &Graph::LabelsDense),
                           InstanceMethod("busy", &Graph::Busy),
                           InstanceMethod("free", &Graph::Free),
                           StaticMethod("searchEach", &Graph::SearchEach),
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
  std::unique_ptr<StreamLoad> stream_;

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
  Napi::Value LoadEnd(const Napi::CallbackInfo& info);

  // A streamed load: loadBegin(total bytes), loadPush(piece)..., loadEnd() (a promise). A piece is copied at once
  // into its final place (the caller may reuse its buffer); the graph is replaced only if every check passes.
  Napi::Value LoadBegin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "loadBegin");
    if (!info[0].IsNumber()) Fail(env, "ARG", "loadBegin expects the serialized length");
    const double total = info[0].As<Napi::Number>().DoubleValue();
    if (!(total >= 0 && total <= 9007199254740991.0 && std::floor(total) == total)) Fail(env, "ARG", "bad serialized length");
    stream_.reset(new StreamLoad(space_.get(), static_cast<size_t>(total)));
    return env.Undefined();
  }

  Napi::Value LoadPush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "loadPush");
    if (!stream_) Fail(env, "ARG", "loadPush before loadBegin");
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      Fail(env, "ARG", "loadPush expects a Uint8Array");
    Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    try {
      stream_->push(bytes.Data(), bytes.ElementLength());
    } catch (const FormatError& e) {
      stream_.reset();
      Fail(env, "FORMAT", e.why);
    } catch (const std::bad_alloc&) {
      stream_.reset();
      Fail(env, "HNSW", "out of memory");
    }
    return env.Undefined();
  }

  Napi::Value LoadAbort(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "loadAbort");
    stream_.reset();
    return env.Undefined();
  }

  // Writes bytes [offset, offset + out.length) of the serialization (saveIndex's bytes) into `out`; returns how many.
  Napi::Value SerializeRangeJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "serializeRange");
    Hnsw* g = Ready(env);
    if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        !info[1].IsNumber())
      Fail(env, "ARG", "serializeRange expects (Uint8Array, offset)");
    Napi::Uint8Array out = info[0].As<Napi::Uint8Array>();
    const double offset = info[1].As<Napi::Number>().DoubleValue();
    if (!(offset >= 0 && std::floor(offset) == offset)) Fail(env, "ARG", "bad offset");
    return Napi::Number::New(env, static_cast<double>(SerializeRange(*g, static_cast<size_t>(offset), out.Data(), out.ElementLength())));
  }

  // searchEach(graphs, query, ks): the unfiltered k nearest of each graph (ks[i] for graphs[i]), the first graph on
  // this thread and the others on the helper thread at the same time, all done before returning: a query over two
  // segment groups takes about the time of the longer walk instead of the sum. Each graph searches at its own ef.
  static Napi::Value SearchEach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsArray() || !info[2].IsArray()) Fail(env, "ARG", "searchEach expects (graphs, query, ks)");
    Napi::Array graphs = info[0].As<Napi::Array>();
    Napi::Array ks = info[2].As<Napi::Array>();
    const uint32_t n = graphs.Length();
    if (n == 0 || n > 64 || ks.Length() != n) Fail(env, "ARG", "searchEach takes 1..64 graphs and one k for each");
    Napi::Function ctor = env.GetInstanceData<Napi::FunctionReference>()->Value();
    struct Job {
      Hnsw* g = nullptr;
      std::vector<float> q;
      size_t k = 0;
      std::priority_queue<std::pair<float, labeltype>> found;
      std::string error;
    };
    std::vector<Job> jobs(n);
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value v = graphs.Get(i);
      // Only this class's objects are unwrapped as graphs.
      if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor)) Fail(env, "ARG", "searchEach: every graph must be a Graph");
      Graph* graph = Graph::Unwrap(v.As<Napi::Object>());
      jobs[i].g = graph->Ready(env);
      graph->VectorArg(env, info[1], jobs[i].q);
      jobs[i].k = Count(env, ks.Get(i), "k");
      if (jobs[i].k > jobs[i].g->max_elements_) Fail(env, "ARG", "k is larger than the graph's capacity");
      for (uint32_t j = 0; j < i; j++)
        if (jobs[j].g == jobs[i].g) Fail(env, "ARG", "searchEach: a graph is named twice");
    }
    auto run = [](Job& job) {
      try {
        job.found = job.g->searchKnn(job.q.data(), job.k, nullptr);
      } catch (const std::exception& e) {
        job.error = e.what();
      }
    };
    // The first graph here, the others one after another on the helper thread; all done before the results are read.
    SearchHelper& helper = SearchHelper::Get();
    const bool handed = n > 1 && helper.Start([&jobs, &run, n] {
      for (uint32_t i = 1; i < n; i++) run(jobs[i]);
    });
    run(jobs[0]);
    if (handed) {
      helper.Wait();
    } else {
      for (uint32_t i = 1; i < n; i++) run(jobs[i]);
    }
    Napi::Array out = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; i++) {
      Job& job = jobs[i];
      if (!job.error.empty()) Fail(env, "HNSW", job.error);
      out.Set(i, HitsObject(env, job.found));
    }
    return out;
  }

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
    return HitsObject(env, found);
  }

  // The exact k nearest among the given labels, by the graph's own distance function on its own copy of each
  // vector (SIMD, no copy out to JS), closest first: the scan of a selective filter's matches, in float as searchKnn
  // measures (store/layer.ts measures the best again as its JavaScript scan does). The caller passes live labels only.
  Napi::Value ScanLabels(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Hnsw* g = Ready(env);
    std::vector<float> q;
    VectorArg(env, info[0], q);
    const size_t k = Count(env, info[1], "k");
    if (info.Length() < 3 || !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      Fail(env, "ARG", "scanLabels expects a Uint32Array of labels");
    Napi::Uint32Array labels = info[2].As<Napi::Uint32Array>();
    const uint32_t* at = labels.Data();
    const size_t n = labels.ElementLength();
    hnswlib::DISTFUNC<float> dist = g->fstdistfunc_;
    void* param = g->dist_func_param_;
    // The rows first, then the distances: a selective filter's matches lie far apart in the graph's memory, so each
    // row is a cold read, and knowing the rows ahead lets the next ones be fetched while this one is measured.
    std::vector<const char*> rows(n);
    {
      std::unique_lock<std::mutex> lock(g->label_lookup_lock);
      for (size_t i = 0; i < n; i++) {
        auto found = g->label_lookup_.find(static_cast<labeltype>(at[i]));
        if (found == g->label_lookup_.end()) {
          lock.unlock();
          Fail(env, "ARG", "scanLabels: a label is not in the graph");
        }
        rows[i] = g->getDataByInternalId(found->second);
      }
    }
    const size_t rowBytes = dim_ * sizeof(float);
    const size_t ahead = 2;
    auto prefetch = [&](size_t i) {
      for (size_t off = 0; off < rowBytes; off += 64) __builtin_prefetch(rows[i] + off, 0, 0);
    };
    for (size_t i = 0; i < std::min(ahead, n); i++) prefetch(i);
    std::priority_queue<std::pair<float, labeltype>> top;
    for (size_t i = 0; i < n; i++) {
      if (i + ahead < n) prefetch(i + ahead);
      const float d = dist(q.data(), rows[i], param);
      if (top.size() < k) {
        top.emplace(d, static_cast<labeltype>(at[i]));
      } else if (k > 0 && d < top.top().first) {
        top.pop();
        top.emplace(d, static_cast<labeltype>(at[i]));
      }
    }
    return HitsObject(env, top);
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

  // Copies every point's stored vector into `out` at label × dim (labels 0..n-1; deleted points included).
  Napi::Value CopyVectors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "copyVectors");
    Hnsw* g = Ready(env);
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      Fail(env, "ARG", "copyVectors expects a Float32Array");
    Napi::Float32Array out = info[0].As<Napi::Float32Array>();
    const size_t rows = out.ElementLength() / dim_;
    for (size_t i = 0; i < g->cur_element_count; i++) {
      const labeltype label = g->getExternalLabel(static_cast<tableint>(i));
      if (label < rows) std::memcpy(out.Data() + label * dim_, g->getDataByInternalId(static_cast<tableint>(i)), dim_ * sizeof(float));
    }
    return env.Undefined();
  }

  // Whether the labels are exactly 0..count-1 (they are unique once loaded: the loader refuses a repeated one).
  Napi::Value LabelsDense(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Idle(env, "labelsDense");
    Hnsw* g = Ready(env);
    const size_t count = g->cur_element_count;
    for (size_t i = 0; i < count; i++)
      if (g->getExternalLabel(static_cast<tableint>(i)) >= count) return Napi::Boolean::New(env, false);
    return Napi::Boolean::New(env, g->label_lookup_.size() == count);
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
  BatchWork(Napi::Env env, Graph* graph, Napi::Object self, Napi::Object vectors, std::vector<const float*> rows, size_t first,
            size_t threads)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), graph_(graph), first_(first), count_(rows.size()),
        threads_(threads), rows_(std::move(rows)) {
    self_ = Napi::Persistent(self);
    vectors_ = Napi::Persistent(vectors);
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
          const float* p = rows_[i];
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
  std::vector<const float*> rows_;
};

// addBatch(vectors, firstLabel, threads): `vectors` is one Float32Array of count × dim, or an array of count
// Float32Arrays of dim each (rows kept where they are: no flat copy). The rows' memory is held by references
// for the whole batch; the caller must not change it until the promise settles.
Napi::Value Graph::AddBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Idle(env, "addBatch");
  Hnsw* g = Ready(env);
  if (info.Length() < 3) Fail(env, "ARG", "addBatch expects (vectors, firstLabel, threads)");
  std::vector<const float*> rows;
  if (info[0].IsTypedArray() && info[0].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
    Napi::Float32Array vectors = info[0].As<Napi::Float32Array>();
    if (vectors.ElementLength() % dim_ != 0) Fail(env, "ARG", "the vectors are not a whole number of points");
    const size_t count = vectors.ElementLength() / dim_;
    rows.reserve(count);
    for (size_t i = 0; i < count; i++) rows.push_back(vectors.Data() + i * dim_);
  } else if (info[0].IsArray()) {
    Napi::Array list = info[0].As<Napi::Array>();
    rows.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Value v = list.Get(i);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
          v.As<Napi::Float32Array>().ElementLength() != dim_)
        Fail(env, "ARG", "every row must be a Float32Array of the graph's dimension");
      rows.push_back(v.As<Napi::Float32Array>().Data());
    }
  } else {
    Fail(env, "ARG", "addBatch expects a Float32Array or an array of Float32Array rows");
  }
  const size_t count = rows.size();
  const size_t first = Count(env, info[1], "firstLabel");
  const size_t threads = Count(env, info[2], "threads");
  if (threads < 1 || threads > 64) Fail(env, "ARG", "threads must be in 1..64");
  if (count > g->max_elements_ - g->cur_element_count) Fail(env, "ARG", "the batch does not fit the graph's capacity");
  if (first + count > 4294967296ull) Fail(env, "ARG", "labels past 2^32");
  const size_t used = std::min(threads, std::max<size_t>(count, 1));
  BatchWork* work = new BatchWork(env, this, Value(), info[0].As<Napi::Object>(), std::move(rows), first, used);
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
  // The end of a streamed load: every byte is in `stream`; only the checks and the graph's assembly are left.
  LoadWork(Napi::Env env, Graph* graph, Napi::Object self, std::unique_ptr<StreamLoad> stream)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), graph_(graph), data_(nullptr), length_(0),
        stream_(std::move(stream)) {
    self_ = Napi::Persistent(self);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      loaded_ = stream_ ? stream_->finish() : LoadFromMemory(graph_->space(), data_, length_);
      stream_.reset();
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
  std::unique_ptr<StreamLoad> stream_;
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

Napi::Value Graph::LoadEnd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Idle(env, "loadEnd");
  if (!stream_) Fail(env, "ARG", "loadEnd before loadBegin");
  LoadWork* work = new LoadWork(env, this, Value(), std::move(stream_));
  busy_ = true;
  work->Queue();
  return work->Promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function graph = Graph::Define(env);
  // searchEach checks that what it unwraps is a Graph.
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(graph)));
  exports.Set("Graph", graph);
  exports.Set("headerSize", Napi::Number::New(env, static_cast<double>(kHeaderSize)));
  return exports;
}

}  // namespace

NODE_API_MODULE(vectorseal_hnsw, Init)
