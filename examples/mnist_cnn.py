"""The tutorial's CNN (shared seed, section 5.2) with one change: `import kerust as keras`.

Run: python examples/mnist_cnn.py [--epochs N] [--limit N]
"""

import argparse

import kerust as keras
from kerust import layers


# 数据预处理 (the tutorial's preprocessing, unchanged)
def preprocess_data(images, labels):
    # 归一化图像数据
    images = images / 255.0
    # 独热编码标签数据
    labels = keras.utils.to_categorical(labels, num_classes=10)
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (the tutorial uses 10)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--seed", type=int, default=None, help="make the run reproducible")
    args = parser.parse_args()
    if args.seed is not None:
        keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train, y_train = preprocess_data(x_train.reshape(-1, 28, 28, 1), y_train)
    x_test, y_test = preprocess_data(x_test.reshape(-1, 28, 28, 1), y_test)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]

    # 构建模型
    model = keras.Sequential([
        layers.Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation='relu'),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation='relu'),
        layers.Flatten(),
        layers.Dense(64, activation='relu'),
        layers.Dense(10, activation='softmax')
    ])
    model.summary()

    # 编译模型
    model.compile(optimizer='adam',
                  loss='categorical_crossentropy',
                  metrics=['accuracy'])

    # 训练模型
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_data=(x_test, y_test))

    # 评估模型
    test_loss, test_acc = model.evaluate(x_test, y_test)
    print('Test accuracy:', test_acc)


if __name__ == "__main__":
    main()
