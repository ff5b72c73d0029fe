"""A DALI pipeline matching the reference in parity_224.py exactly: 224x224 resize, RGB, ImageNet mean/std."""
from nvidia.dali import fn, pipeline_def, types


@pipeline_def(batch_size=32, num_threads=2, device_id=0)
def preprocess_224():
    images = fn.external_source(name="INPUT")
    images = fn.resize(images, size=(224, 224))
    images = fn.color_space_conversion(images, image_type=types.BGR, output_type=types.RGB)
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
