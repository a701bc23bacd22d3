"""The tutorials' models (../shared/seeds/): shapes, parameter counts, summary text."""
import pytest

import minicnn as keras
from minicnn import layers
from minicnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from minicnn.models import Sequential
from minicnn.models.summary import format_row
from minicnn.utils import clear_session


def book_model():
    model = Sequential()
    model.add(Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(Flatten())
    model.add(Dense(64, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    return model


BOOK_SUMMARY = '''\
Model: "sequential"
_________________________________________________________________
Layer (type)                 Output Shape              Param #   
=================================================================
conv2d (Conv2D)              (None, 26, 26, 32)        320       
_________________________________________________________________
max_pooling2d (MaxPooling2D) (None, 13, 13, 32)        0         
_________________________________________________________________
conv2d_1 (Conv2D)            (None, 11, 11, 64)        18496     
_________________________________________________________________
max_pooling2d_1 (MaxPooling2 (None, 5, 5, 64)          0         
_________________________________________________________________
conv2d_2 (Conv2D)            (None, 3, 3, 64)          36928     
_________________________________________________________________
flatten (Flatten)            (None, 576)               0         
_________________________________________________________________
dense (Dense)                (None, 64)                36928     
_________________________________________________________________
dense_1 (Dense)              (None, 10)                650       
=================================================================
Total params: 93,322
Trainable params: 93,322
Non-trainable params: 0
_________________________________________________________________'''


def summary_text(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def test_book_model_summary_is_exact():
    clear_session()
    assert summary_text(book_model()) == BOOK_SUMMARY


def test_summary_prints_to_stdout(capsys):
    clear_session()
    book_model().summary()
    assert capsys.readouterr().out == BOOK_SUMMARY + "\n"


def test_keras_cell_cutting():
    # the tutorial's Keras 2 row: a long name is cut and the next column still starts at 29
    row = format_row(("max_pooling2d_56 (MaxPooling2D)", "(None, 13, 13, 32)", 0))
    assert row == "max_pooling2d_56 (MaxPooling (None, 13, 13, 32)        0         "
    assert len(row) == 65


def test_book_model_shapes_and_counts():
    model = book_model()
    assert [l.output_shape for l in model.layers] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 11, 11, 64), (None, 5, 5, 64),
        (None, 3, 3, 64), (None, 576), (None, 64), (None, 10)]
    assert [l.count_params() for l in model.layers] == [320, 0, 18496, 0, 36928, 0, 36928, 650]
    assert model.count_params() == 93322


def test_seed_single_conv_layers():
    m = Sequential([Conv2D(filters=16, kernel_size=2, strides=2, padding="valid", activation="relu",
                           input_shape=(200, 200, 1))])
    assert (m.output_shape, m.count_params()) == ((None, 100, 100, 16), 80)
    m = Sequential([Conv2D(filters=32, kernel_size=3, strides=2, padding="same", activation="relu",
                           input_shape=(128, 128, 3))])
    assert (m.output_shape, m.count_params()) == ((None, 64, 64, 32), 896)


@pytest.mark.parametrize("k, s, padding, out", [
    ((3, 3), 1, "valid", (None, 26, 26, 32)), ((3, 3), 2, "valid", (None, 13, 13, 32)),
    ((3, 3), 1, "same", (None, 28, 28, 32)), ((5, 5), 1, "valid", (None, 24, 24, 32)),
])
def test_seed_stride_and_padding_shapes(k, s, padding, out):
    m = Sequential([layers.Conv2D(32, k, strides=s, padding=padding, activation="relu",
                                  input_shape=(28, 28, 1))])
    assert m.output_shape == out
    assert m.count_params() == (832 if k == (5, 5) else 320)


def test_seed_depth_increase_and_pooling():
    m = Sequential()
    m.add(Conv2D(filters=16, kernel_size=2, padding="same", activation="relu", input_shape=(32, 32, 3)))
    m.add(MaxPooling2D(pool_size=2))
    m.add(Conv2D(filters=32, kernel_size=2, padding="same", activation="relu"))
    m.add(MaxPooling2D(pool_size=2))
    m.add(Conv2D(filters=64, kernel_size=2, padding="same", activation="relu"))
    m.add(MaxPooling2D(pool_size=2))
    assert [l.count_params() for l in m.layers] == [208, 0, 2080, 0, 8256, 0]
    assert m.count_params() == 10544
    assert m.output_shape == (None, 4, 4, 64)
    m.add(Flatten())
    m.add(Dense(500, activation="relu"))
    m.add(Dense(10, activation="softmax"))
    assert [l.output_shape for l in m.layers[-3:]] == [(None, 1024), (None, 500), (None, 10)]
    assert [l.count_params() for l in m.layers[-2:]] == [512500, 5010]
    assert m.count_params() == 528054


def test_seed_max_pooling_only():
    m = Sequential([MaxPooling2D(pool_size=2, strides=2, input_shape=(100, 100, 15))])
    assert (m.output_shape, m.count_params()) == ((None, 50, 50, 15), 0)


def test_seed_5x5_128_filter_model():
    m = Sequential()
    m.add(layers.Conv2D(128, (5, 5), activation="relu", input_shape=(28, 28, 3)))
    m.add(layers.MaxPooling2D((2, 2)))
    m.add(layers.Conv2D(128, (3, 3), activation="relu"))
    m.add(layers.MaxPooling2D((2, 2)))
    m.add(layers.Conv2D(64, (3, 3), activation="relu"))
    m.add(layers.Flatten())
    m.add(layers.Dense(64, activation="relu"))
    m.add(layers.Dense(10, activation="softmax"))
    assert [l.count_params() for l in m.layers] == [9728, 0, 147584, 0, 73792, 0, 36928, 650]
    assert [l.output_shape for l in m.layers[:6]] == [
        (None, 24, 24, 128), (None, 12, 12, 128), (None, 10, 10, 128), (None, 5, 5, 128),
        (None, 3, 3, 64), (None, 576)]


def functional(shape, *convs):
    inputs = keras.Input(shape=shape)
    x = inputs
    for kwargs in convs:
        x = layers.Conv2D(**kwargs)(x)
    return keras.Model(inputs=inputs, outputs=x)


@pytest.mark.parametrize("shape, convs, out, counts", [
    ((8, 8, 1), [dict(filters=3, kernel_size=2, activation="relu", padding="VALID")], (None, 7, 7, 3), [15]),
    ((8, 8, 3), [dict(filters=2, kernel_size=3, activation="relu", padding="VALID")], (None, 6, 6, 2), [56]),
    ((8, 8, 3), [dict(filters=2, kernel_size=3, activation="relu", padding="VALID"),
                 dict(filters=4, kernel_size=3, activation="relu", padding="VALID")], (None, 4, 4, 4), [56, 76]),
    ((8, 8, 1), [dict(filters=2, kernel_size=3, activation="relu", padding="SAME")], (None, 8, 8, 2), [20]),
    ((8, 8, 1), [dict(filters=2, kernel_size=3, strides=2, activation="relu", padding="SAME")],
     (None, 4, 4, 2), [20]),
    ((8, 8, 1), [dict(filters=2, kernel_size=1, activation="relu", padding="SAME")], (None, 8, 8, 2), [4]),
    ((8, 8, 3), [dict(filters=2, kernel_size=1, activation="relu", padding="SAME")], (None, 8, 8, 2), [8]),
])
def test_seed_functional_models(shape, convs, out, counts):
    model = functional(shape, *convs)
    assert model.output_shape == out
    assert [l.count_params() for l in model.layers] == [0] + counts
    assert model.count_params() == sum(counts)


def test_functional_summary_has_input_row():
    clear_session()
    model = functional((8, 8, 1), dict(filters=3, kernel_size=2, activation="relu", padding="VALID"))
    lines = summary_text(model).splitlines()
    assert lines[0] == 'Model: "model"'
    assert lines[4] == "input_1 (InputLayer)         [(None, 8, 8, 1)]         0         "
    assert lines[6] == "conv2d (Conv2D)              (None, 7, 7, 3)           15        "
    assert lines[-4:-1] == ["Total params: 15", "Trainable params: 15", "Non-trainable params: 0"]


def test_names_count_up_per_class():
    clear_session()
    a, b, c = Conv2D(1, 1), Conv2D(1, 1), MaxPooling2D()
    assert (a.name, b.name, c.name) == ("conv2d", "conv2d_1", "max_pooling2d")
    assert Sequential().name == "sequential" and Sequential().name == "sequential_1"
