from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageLoadChunk(_message.Message):
    __slots__ = ("node_name", "data", "layers")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    data: bytes
    layers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_name: _Optional[str] = ..., data: _Optional[bytes] = ..., layers: _Optional[_Iterable[str]] = ...) -> None: ...

class LoadedImage(_message.Message):
    __slots__ = ("reference", "image_id")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    reference: str
    image_id: str
    def __init__(self, reference: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class ImageLoadProgress(_message.Message):
    __slots__ = ("node_name", "images", "bytes_received", "layers_present")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LAYERS_PRESENT_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    images: _containers.RepeatedCompositeFieldContainer[LoadedImage]
    bytes_received: int
    layers_present: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node_name: _Optional[str] = ..., images: _Optional[_Iterable[_Union[LoadedImage, _Mapping]]] = ..., bytes_received: _Optional[int] = ..., layers_present: _Optional[_Iterable[str]] = ...) -> None: ...

class ImageBuildOptions(_message.Message):
    __slots__ = ("tags", "dockerfile", "build_args", "target", "no_cache", "network")
    class BuildArgsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    BUILD_ARGS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    dockerfile: str
    build_args: _containers.ScalarMap[str, str]
    target: str
    no_cache: bool
    network: str
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., dockerfile: _Optional[str] = ..., build_args: _Optional[_Mapping[str, str]] = ..., target: _Optional[str] = ..., no_cache: _Optional[bool] = ..., network: _Optional[str] = ...) -> None: ...

class ImageBuildChunk(_message.Message):
    __slots__ = ("node_name", "options", "context")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    options: ImageBuildOptions
    context: bytes
    def __init__(self, node_name: _Optional[str] = ..., options: _Optional[_Union[ImageBuildOptions, _Mapping]] = ..., context: _Optional[bytes] = ...) -> None: ...

class ImageBuildProgress(_message.Message):
    __slots__ = ("node_name", "line", "image_id")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    line: str
    image_id: str
    def __init__(self, node_name: _Optional[str] = ..., line: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...
