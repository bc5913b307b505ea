/** A model the CLI and library know by name, with what it needs to be explained well. */
export interface ZooEntry {
  name: string;
  /** Models built from a state dict the user supplies (`--weights file.safetensors`). */
  needsWeights?: boolean;
  /** Models downloaded once into the cache. */
  url?: string;
  /** Models shipped in the package, by path from the package root. */
  file?: string;
  description: string;
  /** Class names by index. */
  labels: readonly string[];
  /** The square input side the model was trained at; CAMERAS' resolutions start there. */
  inputSize: number;
  /** Preprocessing preset name (see io/preprocess.ts). */
  preprocess: string;
  /** Default target layer (a Keras layer name or torch module path); empty: the model's default (`defaultLayer`). */
  layer: string;
  /** A detector's output layout (`DetectionLayout`), where its shape does not tell. */
  detectionLayout?: 'yolo' | 'yolov8' | 'ssd';
}

const NSFW_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;
const COMPOSITE_CLASSES = ['tshirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot'];

/**
 * The built-in models. The nsfwjs networks are real pretrained CNNs (ImageNet architectures fine-tuned
 * by the nsfwjs project to sort images into 5 content classes); they ship inside the `nsfwjs` package
 * and are converted to ONNX once, into the user's cache.
 */
export const ZOO: readonly ZooEntry[] = [
  {
    name: 'nsfwjs:mobilenet_v2',
    description: 'MobileNetV2 (224 px) from nsfwjs 4.4.0: 5 content classes (Drawing, Hentai, Neutral, Porn, Sexy)',
    labels: NSFW_CLASSES,
    inputSize: 224,
    preprocess: 'unit',
    layer: 'out_relu',
  },
  {
    name: 'nsfwjs:inception_v3',
    description: "InceptionV3 (299 px, the paper's own architecture) from nsfwjs 4.4.0: the same 5 content classes",
    labels: NSFW_CLASSES,
    inputSize: 299,
    preprocess: 'unit',
    layer: 'mixed10',
  },
  {
    name: 'composite:fashion',
    description:
      'a small CNN trained on the composite benchmark (Fashion-MNIST items pasted on photos, bench/composite) with random resized crops, as ImageNet models are: ground truth known by construction',
    file: 'assets/models/composite_fashion.onnx',
    labels: COMPOSITE_CLASSES,
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'features',
  },
  {
    name: 'composite:fashion-single-scale',
    description:
      'the same CNN trained at the one scale of the composite benchmark, without crops: kept to compare (it sees other scales badly)',
    file: 'assets/models/composite_fashion_single_scale.onnx',
    labels: COMPOSITE_CLASSES,
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'features',
  },
  {
    name: 'composite:detector',
    description:
      'a small single-stage detector (stride 16, YOLO-style output before NMS) trained on composite scenes of 1-3 Fashion-MNIST items on photos (bench/composite-detection)',
    file: 'assets/models/composite_detector.onnx',
    labels: COMPOSITE_CLASSES,
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'features.14',
    detectionLayout: 'yolo',
  },
  {
    name: 'composite:segmenter',
    description:
      'a small segmenter (stride 8, class scores upsampled to the input as torchvision FCN) trained on the same composite scenes: background and the 10 classes',
    file: 'assets/models/composite_segmenter.onnx',
    labels: ['background', ...COMPOSITE_CLASSES],
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'features',
  },
  {
    name: 'composite:vit',
    description:
      "a small Vision Transformer (torchvision's, patch 16, 4 blocks of width 96) trained from scratch on the composite benchmark's task, exported by torch.onnx.export",
    file: 'assets/models/composite_vit.onnx',
    labels: COMPOSITE_CLASSES,
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'encoder.layers.encoder_layer_3.ln_1',
  },
];

/**
 * torchvision architectures built from a `.safetensors` state dict (`--weights`), with ImageNet's labels
 * (assets/labels/imagenet.json) and the target layers CAMERAS papers use.
 */
export const TORCHVISION: readonly ZooEntry[] = [
  ...(['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'] as const).map((arch) => ({
    name: `torchvision:${arch}`,
    description: `torchvision ${arch} from your ImageNet weights (--weights ${arch}.safetensors)`,
    needsWeights: true,
    labels: [] as string[],
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'layer4',
  })),
  {
    name: 'torchvision:vgg16',
    description: 'torchvision vgg16 from your ImageNet weights (--weights vgg16.safetensors)',
    needsWeights: true,
    labels: [],
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'features.29',
  },
  {
    name: 'torchvision:inception_v3',
    description:
      "torchvision inception_v3, the paper's own architecture, from your ImageNet weights (--weights inception_v3.safetensors; transform_input on, as torchvision sets it for them)",
    needsWeights: true,
    labels: [],
    inputSize: 299,
    preprocess: 'torchvision',
    layer: 'Mixed_7c',
  },
  {
    name: 'torchvision:densenet121',
    description: 'torchvision densenet121 from your ImageNet weights (--weights densenet121.safetensors)',
    needsWeights: true,
    labels: [],
    inputSize: 224,
    preprocess: 'torchvision',
    layer: 'features',
  },
];

/**
 * ImageNet classifiers from the ONNX model zoo, downloaded on first use (the address may move; any
 * .onnx URL or file works as --model too). Their node names carry no torch scopes: the default layer
 * is the input of the global pooling.
 */
export const ONLINE: readonly ZooEntry[] = [
  {
    name: 'onnx:resnet50-v1-7',
    description: 'ResNet-50 v1 (ImageNet, 1000 classes) from the ONNX model zoo, downloaded on first use',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v1-7.onnx',
    labels: [],
    inputSize: 224,
    preprocess: 'torchvision',
    layer: '',
  },
  {
    name: 'onnx:mobilenetv2-7',
    description: 'MobileNetV2 (ImageNet, 1000 classes) from the ONNX model zoo, downloaded on first use',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-7.onnx',
    labels: [],
    inputSize: 224,
    preprocess: 'torchvision',
    layer: '',
  },
];

export const DEFAULT_MODEL_NAME = 'nsfwjs:mobilenet_v2';

export function zooEntry(name: string): ZooEntry | undefined {
  return [...ZOO, ...TORCHVISION, ...ONLINE].find((e) => e.name === name);
}

/**
 * Scales for CAMERAS from a model's input side: its size and 7 more, 100 px apart (the paper's 224..924); for a
 * model that cuts its input into `patch` x `patch` patches (a ViT), the step is the multiple of the patch nearest
 * 100 px, so every scale is a whole grid of patches (patch 16: 224, 320, ..., 896).
 */
export function resolutionsFor(inputSize: number, patch?: number): number[] {
  const step = patch && patch > 1 ? patch * Math.max(1, Math.round(100 / patch)) : 100;
  return Array.from({ length: 8 }, (_, i) => inputSize + step * i);
}

/** A class by index ("3") or by label, case-insensitively ("tabby cat"); undefined when no label matches. */
export function classByName(value: string, labels: readonly string[] | undefined): number | undefined {
  if (/^\d+$/.test(value.trim())) return Number(value);
  const wanted = value.trim().toLowerCase();
  const index = labels?.findIndex((l) => l.toLowerCase() === wanted) ?? -1;
  return index >= 0 ? index : undefined;
}
