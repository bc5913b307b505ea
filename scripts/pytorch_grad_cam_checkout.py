"""Makes a checkout of pytorch-grad-cam importable as it is: the modules it imports only for test-time augmentation
and KPCA/NMF (ttach, sklearn) are stubbed, as the fixture scripts never call them."""
import sys
import types


def use_checkout(path):
    for name, attrs in [('ttach', ['Compose', 'HorizontalFlip', 'Multiply']), ('sklearn', []),
                        ('sklearn.decomposition', ['KernelPCA', 'NMF'])]:
        module = types.ModuleType(name)
        for attr in attrs:
            setattr(module, attr, type(attr, (), {'__init__': lambda self, *args, **kwargs: None}))
        sys.modules.setdefault(name, module)
    sys.path.insert(0, path)
