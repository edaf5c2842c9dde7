// The field set (docs/FIELD.md): images the user found the model getting wrong, or images of the
// situation it must now handle (a confused pair, shifted inputs, a class it saw too little of), with
// their true classes. Split once, seeded and per class, into the part the field arms fine-tune and
// select on and a hold-out kept for measuring; the same for every arm.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apricot/data/dataset.hpp"

namespace apricot {

struct DataConfig;
struct FieldConfig;

struct FieldSet {
  Split sel;              // the repair part: everything but the hold-out (fit and pick together)
  Split fit;              // what the fine-tunes and gates train on (field.select 0: the whole repair part)
  Split pick;             // what the selection rule chooses on (field.select 0: the whole repair part)
  Split holdout;          // measuring only: never trained on, never selected on
  std::string source;     // field.root, for messages
  std::string fingerprint;  // stable hash of the repair part's and the hold-out's pixels and labels
};

// Reads field.format from field.root: npy (x_field.npy, y_field.npy as numpy.save writes them) or
// imagefolder (root/<class>/*: the class folders are the training data's class names when data.format
// is imagefolder, else the class indices 0, 1, ...). The images must have the training images'
// channels and size (imagefolder: converted to the channels and resized to data.image_size when it is
// set). Error(kData) naming the file for a missing folder or file, an unknown class, images of another
// size, a label out of range, or a split that leaves the hold-out, the fit part or the pick part empty.
// The repair part is split again, per class and seeded (seeds::field_select), into fit and pick by
// field.select; with field.select 0 both are the whole repair part.
FieldSet load_field(const FieldConfig& f, const DataConfig& d, const Dataset& data, uint64_t seed);

// A per-class split of the field: round(share x n) of each class's rows into `hold` (drawn from the
// random stream seeded `stream`), the rest into `sel`, both in their original order. The hold-out is
// split_field(all, classes, field.holdout, seeds::field_holdout(run), sel, hold).
void split_field(const Split& all, int64_t classes, double share, uint64_t stream, Split& sel, Split& hold);

const std::vector<std::string>& field_formats();  // "imagefolder" "npy"
// The checks of the keys the data layer reads (field.format, root, holdout); the fine-tuning recipe's
// keys are the method layer's (method/field.hpp). kUsage naming the key.
void validate(const FieldConfig& f);

}  // namespace apricot
