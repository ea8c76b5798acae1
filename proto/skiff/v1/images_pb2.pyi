from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageLoadChunk(_message.Message):
    __slots__ = ("node_name", "data")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    data: bytes
    def __init__(self, node_name: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class LoadedImage(_message.Message):
    __slots__ = ("reference", "image_id")
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    reference: str
    image_id: str
    def __init__(self, reference: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class ImageLoadProgress(_message.Message):
    __slots__ = ("node_name", "images", "bytes_received")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    images: _containers.RepeatedCompositeFieldContainer[LoadedImage]
    bytes_received: int
    def __init__(self, node_name: _Optional[str] = ..., images: _Optional[_Iterable[_Union[LoadedImage, _Mapping]]] = ..., bytes_received: _Optional[int] = ...) -> None: ...
