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
  Split sel;              // fine-tuning and selection
  Split holdout;          // measuring only: never trained on, never selected on
  std::string source;     // field.root, for messages
  std::string fingerprint;  // stable hash of both parts' pixels and labels
};

// Reads field.format from field.root: npy (x_field.npy, y_field.npy as numpy.save writes them) or
// imagefolder (root/<class>/*: the class folders are the training data's class names when data.format
// is imagefolder, else the class indices 0, 1, ...). The images must have the training images'
// channels and size (imagefolder: converted to the channels and resized to data.image_size when it is
// set). Error(kData) naming the file for a missing folder or file, an unknown class, images of another
// size, a label out of range, or a split that leaves the hold-out or the selection part empty.
FieldSet load_field(const FieldConfig& f, const DataConfig& d, const Dataset& data, uint64_t seed);

// The field's hold-out split: per class, round(holdout x n) of its rows, seeded; the rest in order.
void split_field(const Split& all, int64_t classes, double holdout, uint64_t seed, Split& sel, Split& hold);

const std::vector<std::string>& field_formats();  // "imagefolder" "npy"
// The checks of the keys the data layer reads (field.format, root, holdout); the fine-tuning recipe's
// keys are the method layer's (method/field.hpp). kUsage naming the key.
void validate(const FieldConfig& f);

}  // namespace apricot
