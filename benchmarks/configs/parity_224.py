# Benchmark config: ResNet-50's shipped data_preprocessor, a 224x224 Pillow resize, the bundled images.
reference = dict(
    config='mmpretrain::resnet/resnet50_8xb32_in1k.py',
    test_pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(224, 224), keep_ratio=False, backend='pillow', interpolation='bilinear'),
        dict(type='PackInputs'),
    ],
)
dali = dict(pipeline='pipeline_224.py:preprocess_224', input_name='INPUT')
images = ['../../fixtures/images/*.png']
