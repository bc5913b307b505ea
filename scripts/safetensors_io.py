"""A state dict written as .safetensors without the safetensors package (Debian has none)."""
import json
import os
import struct

import torch


def save_safetensors(path, state):
    """The layout of the safetensors package's writer (safetensors.torch.save_file): compact JSON header padded
    with spaces to 8 bytes; tensors ordered by dtype size (largest first), then name; integer buffers such as
    BatchNorm's num_batches_tracked kept as I64, as torch's state_dict() holds them."""
    kinds = {torch.float32: ('F32', '<f4', 4), torch.int64: ('I64', '<i8', 8)}
    order = sorted(state.items(), key=lambda item: (-kinds[item[1].dtype][2], item[0]))
    header, blobs, offset = {}, [], 0
    for name, tensor in order:
        dtype, layout, _ = kinds[tensor.dtype]
        data = tensor.detach().contiguous().numpy().astype(layout).tobytes()
        header[name] = {'dtype': dtype, 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def load_safetensors(path):
    """The state dict in a file save_safetensors wrote (F32 and I64 tensors), read in one go as torch.load reads a
    .pth: what a user of the authors' code pays to load the model's weights."""
    kinds = {'F32': torch.float32, 'I64': torch.int64}
    with open(path, 'rb') as f:
        size = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(size))
        data = bytearray(os.fstat(f.fileno()).st_size - 8 - size)
        f.readinto(data)  # one copy of the weights, as torch.load holds
    state = {}
    for name, entry in header.items():
        if name == '__metadata__':
            continue
        start, end = entry['data_offsets']
        dtype = kinds[entry['dtype']]
        count = (end - start) // torch.empty(0, dtype=dtype).element_size()
        tensor = torch.frombuffer(data, dtype=dtype, count=count, offset=start) if count else torch.empty(0, dtype=dtype)
        state[name] = tensor.reshape(entry['shape'])
    return state
